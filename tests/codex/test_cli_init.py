"""A fleet written by `fleet init` starts: real Codex agents in real tmux, against the scripted model.
In a plain directory the agents share it as their cwd; in a git repository each worker comes up in
its own worktree under the state dir, and the user's checkout is left as it was.

The only edit to the file is the one every offline test fleet needs: `[defaults]` gets the `codex`
binary and the `args` that point Codex at the mock model (the line init leaves commented).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
from conftest import Fleet, fleet_installed_in_temp
from gitrepos import git, make_repo
from mockmodel import MockServer
from offlinecodex import codex_offline_args

from fleet.service.init import NO_TMP_ARGS


def init_fleet(args: list[str], path: Path, root: Path, codex_bin: str, mock_model: MockServer) -> Fleet:
    """Run `fleet init ARGS --path PATH --yes --json`, point the written file at the mock model, and
    return the fleet it describes."""
    init = subprocess.run([sys.executable, "-m", "fleet", "init", *args, "--path", str(path), "--yes", "--json"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert init.returncode == 0, init.stderr
    result: dict[str, Any] = json.loads(init.stdout)
    text = path.read_text()
    offline = codex_offline_args(mock_model.url)
    line = f"args = {json.dumps(list(NO_TMP_ARGS))}"
    if line in text:  # init left /tmp out of writing agents' sandboxes (this fleet lies there): keep it
        assert fleet_installed_in_temp()
        offline = [*NO_TMP_ARGS, *offline]
    else:
        line = "# args = []"
    assert line in text
    path.write_text(text.replace(line, f"codex = {json.dumps(codex_bin)}\nargs = {json.dumps(offline)}"))
    return Fleet(path=path, name=result["fleet"], state_dir=Path(result["state_dir"]),
                 agents=[a["name"] for a in result["agents"]], root=root)


def test_an_initd_fleet_passes_doctor_and_comes_up_idle(tmp_path: Path, codex_bin: str,
                                                        mock_model: MockServer) -> None:
    repo = tmp_path / "proj"
    repo.mkdir()
    f = init_fleet(["--agents", "2", "--repo", str(repo)], tmp_path / "conf" / "fleet.toml", tmp_path,
                   codex_bin, mock_model)
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


def test_an_initd_repo_fleet_comes_up_in_worktrees_and_leaves_the_checkout_alone(
        monkeypatch: pytest.MonkeyPatch, codex_bin: str, mock_model: MockServer) -> None:
    """A HOME outside /tmp: init checks the layout before the mock's args exclude /tmp, and a worker
    that may write /tmp would reach homes and state dir under pytest's tmp_path."""
    root = Path(tempfile.mkdtemp(prefix="fleet-init-", dir="/var/tmp"))
    (root / "home").mkdir()
    monkeypatch.setenv("HOME", str(root / "home"))
    for var in ("XDG_STATE_HOME", "XDG_CONFIG_HOME", "TMPDIR"):
        monkeypatch.delenv(var, raising=False)
    repo = make_repo(root / "home" / "shop")
    head = git(repo, "rev-parse", "HEAD")
    f = init_fleet(["--agents", "2", "--repo", str(repo)], root / "home" / ".config" / "fleet" / "fleet.toml", root,
                   codex_bin, mock_model)
    try:
        doctor = f.json("doctor")
        assert doctor["ok"], [c for c in doctor["checks"] if not c["ok"]]
        up = f.json("up")
        assert [a["agent"] for a in up["agents"]] == ["worker-1", "worker-2"]
        assert all(a["started"] and a["state"] == "idle" for a in up["agents"]), up
        worktrees = f.state_dir / "worktrees"
        assert f.state_dir == root / "home" / ".local" / "state" / "fleet" / "shop"
        status = f.json("status")["agents"]
        assert [(a["name"], a["role"], a["cwd"]) for a in status] == [
            (name, "worker", str(worktrees / name)) for name in ("worker-1", "worker-2")]
        for name in ("worker-1", "worker-2"):  # a worktree of the repository, at the base's tip
            assert (worktrees / name / "app.py").is_file()
            assert git(worktrees / name, "rev-parse", "HEAD") == head
        listed = {w["agent"]: (w["path"], w["state"]) for w in f.json("worktrees")["worktrees"]}
        assert listed == {name: (str(worktrees / name), "clean") for name in ("worker-1", "worker-2")}
        assert git(repo, "status", "--porcelain") == ""
        assert git(repo, "rev-parse", "HEAD") == head
        assert git(repo, "symbolic-ref", "HEAD").strip() == "refs/heads/main"
        f.json("down")
    finally:
        f.tmux("kill-server")
        shutil.rmtree(root, ignore_errors=True)
