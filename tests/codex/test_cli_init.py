"""A fleet written by `fleet init` starts: real Codex agents in real tmux, against the scripted model.

The only edit to the file is the one every offline test fleet needs: `[defaults]` gets the `codex`
binary and the `args` that point Codex at the mock model (the line init leaves commented).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from conftest import Fleet
from mockmodel import MockServer, codex_offline_args


def test_an_initd_fleet_passes_doctor_and_comes_up_idle(tmp_path: Path, codex_bin: str,
                                                        mock_model: MockServer) -> None:
    repo = tmp_path / "proj"
    repo.mkdir()
    path = tmp_path / "conf" / "fleet.toml"
    init = subprocess.run([sys.executable, "-m", "fleet", "init", "--agents", "2", "--repo", str(repo),
                           "--path", str(path), "--yes", "--json"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert init.returncode == 0, init.stderr
    result = json.loads(init.stdout)
    text = path.read_text()
    assert "# args = []" in text
    path.write_text(text.replace(
        "# args = []", f"codex = {json.dumps(codex_bin)}\nargs = {json.dumps(codex_offline_args(mock_model.url))}"))
    f = Fleet(path=path, name=result["fleet"], state_dir=Path(result["state_dir"]),
              agents=[a["name"] for a in result["agents"]], root=tmp_path)
    try:
        doctor = f.json("doctor")
        assert doctor["ok"], [c for c in doctor["checks"] if not c["ok"]]
        up = f.json("up")
        assert [a["agent"] for a in up["agents"]] == ["explorer-1", "explorer-2"]
        assert all(a["started"] and a["state"] == "idle" for a in up["agents"])
        assert {a["cwd"] for a in f.json("status")["agents"]} == {str(repo.resolve())}
        f.json("down")
    finally:
        f.tmux("kill-server")
