"""Pointing a real Codex at the scripted model (`mockmodel.py`) with no network.

`codex_offline_args` gives the `-c` overrides for a test or demo fleet's `[defaults] args`;
`apply_patch_catalog` writes a model catalog that gives `mock-model` a built-in model's metadata.
"""

from __future__ import annotations

import json
from pathlib import Path


def codex_offline_args(base_url: str, *, plugins: bool = False) -> list[str]:
    """`-c` overrides that point Codex at a mock model and keep it off the network.

    For `[defaults] args` in a demo or test fleet.toml: a custom provider with no auth and no retries,
    and analytics, plugin sync and update checks off (`--no-daemon` is added by fleet itself). The
    sandbox's `/tmp` and `$TMPDIR` are left out of a workspace-write agent's writable roots: a test
    fleet's state dir, homes and config live under pytest's `/tmp`, and `fleet up` refuses to start an
    agent that could write them.
    `plugins=True` turns Codex's plugins feature on instead (same place in the list), for a Codex
    that must load installed plugins' skills and MCP servers (a lead).
    """
    provider = (
        f'{{name="Mock", base_url="{base_url}", wire_api="responses", '
        "request_max_retries=0, stream_max_retries=0}"
    )
    return [
        "-c", 'model="mock-model"',
        "-c", 'model_provider="mock"',
        "-c", f"model_providers.mock={provider}",
        "-c", "analytics.enabled=false",
        "-c", f"features.plugins={'true' if plugins else 'false'}",
        "-c", "features.daemon_auto_start=false",
        "-c", "check_for_update_on_startup=false",
        "-c", "tui.screen_reader_detection_done=true",
        "-c", "sandbox_workspace_write.exclude_slash_tmp=true",
        "-c", "sandbox_workspace_write.exclude_tmpdir_env_var=true",
    ]


def apply_patch_catalog(codex: str, dest: Path) -> Path:
    """Write a model catalog giving `mock-model` the metadata of a built-in model, into `dest`.

    Codex offers its apply_patch tool only to models whose catalog metadata says so, and an unknown
    slug gets none; pass the result as `-c model_catalog_json="<path>"`. Runs `codex debug models`
    with a throw-away CODEX_HOME (no network needed).
    """
    import os
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory(prefix="catalog-home-") as home:
        out = subprocess.run([codex, "debug", "models"], env={**os.environ, "CODEX_HOME": home},
                             capture_output=True, text=True, timeout=60, check=True,
                             stdin=subprocess.DEVNULL).stdout
    entry = next(m for m in json.loads(out)["models"] if m.get("apply_patch_tool_type") == "freeform")
    dest.write_text(json.dumps({"models": [{**entry, "slug": "mock-model", "display_name": "mock-model"}]}))
    return dest
