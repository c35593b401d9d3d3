"""The service layer: every operation's logic, once; the adapters only translate in and out."""

from __future__ import annotations

from .core import Service, default_holder

__all__ = ["Service", "default_holder"]
