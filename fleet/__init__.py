"""fleet: supervise a fleet of named OpenAI Codex CLI agents in tmux."""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["__version__"]
