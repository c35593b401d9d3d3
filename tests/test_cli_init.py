"""`fleet init` through the real CLI in a temp HOME: the file it writes passes the real `fleet
doctor`, in a plain directory (a shared cwd, and the output says why) and in a real git repository
(workers in worktrees, the checkout untouched); it never overwrites; `--copy-auth-from` copies
auth.json 0600 and never prints it; without `--yes` and a terminal it refuses.

`codex` on the PATH is a stub that prints a version: doctor runs `codex --version` (and `codex
plugin`, whose failure is only a note), and real Codex runs only under tests/codex/.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import fleet_installed_in_temp
from gitrepos import git, make_repo

from fleet.service.init import TMP_NOTE

SECRET = "sk-fleet-init-test-SECRET-4242"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "my-project"
    path.mkdir()
    return path


def fleet(cwd: Path, *args: str, tty_input: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run `fleet ARGS` in `cwd` as a real process, with the stub codex first on the PATH."""
    bindir = cwd.parent / "bin"
    if not bindir.exists():
        bindir.mkdir()
        (bindir / "codex").write_text("#!/bin/sh\necho codex-cli 0.169.0\n")
        (bindir / "codex").chmod(0o755)
    env = {**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run([sys.executable, "-m", "fleet", *args], cwd=cwd, capture_output=True, text=True,
                          input=tty_input, env=env, timeout=60, check=False)


def test_init_writes_a_config_that_doctor_passes(repo: Path) -> None:
    proc = fleet(repo, "init", "--agents", "3", "--role", "explorer", "--role", "explorer", "--role", "lead",
                 "--repo", ".", "--yes")
    assert proc.returncode == 0, proc.stderr
    assert "CODEX_HOME=" in proc.stdout
    assert "codex login" in proc.stdout
    assert "is not in a git repository, so no worktrees" in proc.stdout
    config = repo / "fleet.toml"
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert "[agents.lead]" in config.read_text()
    doctor = fleet(repo, "doctor", "--json")
    result = json.loads(doctor.stdout)
    assert doctor.returncode == 0, [c for c in result["checks"] if not c["ok"]]
    checks = {c["name"]: c for c in result["checks"]}
    assert "found in the current directory" in checks["config"]["detail"]
    assert "3 agent(s)" in checks["config"]["detail"]
    status = json.loads(fleet(repo, "status", "--json").stdout)
    assert [(a["name"], a["role"], a["cwd"]) for a in status["agents"]] == [
        (name, role, str(repo.resolve())) for name, role in
        (("explorer-1", "explorer"), ("explorer-2", "explorer"), ("lead", "lead"))]


def test_init_never_overwrites_an_existing_file(repo: Path) -> None:
    (repo / "fleet.toml").write_text("# mine\n")
    proc = fleet(repo, "init", "--yes", "--json")
    assert proc.returncode == 1
    assert json.loads(proc.stdout)["error"]["code"] == "config_exists"
    assert "--path" in proc.stderr
    assert (repo / "fleet.toml").read_text() == "# mine\n"


def test_copy_auth_from_copies_auth_json_0600_and_never_prints_it(repo: Path) -> None:
    source = Path.home() / ".codex"
    source.mkdir()
    (source / "auth.json").write_text(json.dumps({"OPENAI_API_KEY": SECRET}))
    human = fleet(repo, "init", "--agents", "2", "--copy-auth-from", str(source), "--yes")
    assert human.returncode == 0, human.stderr
    homes = [Path.home() / ".codex-my-project-explorer-1", Path.home() / ".codex-my-project-explorer-2"]
    for home in homes:
        auth = home / "auth.json"
        st = os.lstat(auth)
        assert stat.S_ISREG(st.st_mode)
        assert stat.S_IMODE(st.st_mode) == 0o600
        assert stat.S_IMODE(os.lstat(home).st_mode) == 0o700
        assert SECRET in auth.read_text()
    (repo / "fleet.toml").unlink()
    as_json = fleet(repo, "init", "--agents", "2", "--copy-auth-from", str(source), "--yes", "--json")
    assert as_json.returncode == 0, as_json.stderr
    assert [a["login"] for a in json.loads(as_json.stdout)["agents"]] == ["has_auth", "has_auth"]
    for proc in (human, as_json):
        assert SECRET not in proc.stdout + proc.stderr


def test_without_yes_and_without_a_terminal_it_refuses(repo: Path) -> None:
    proc = fleet(repo, "init", tty_input="y\n")
    assert proc.returncode == 2
    assert "confirmation_required" in proc.stderr
    assert "--yes" in proc.stderr
    assert not (repo / "fleet.toml").exists()


def test_in_a_terminal_it_shows_the_file_and_writes_only_on_yes(repo: Path) -> None:
    """A pseudo-terminal stands in for the person at the keyboard."""
    import pty

    def run(answer: bytes) -> str:
        fd, tty = pty.openpty()
        proc = subprocess.Popen([sys.executable, "-m", "fleet", "init", "--agents", "1"], cwd=repo,
                                stdin=tty, stdout=tty, stderr=tty, start_new_session=True)
        os.close(tty)
        out = b""
        try:
            while b"Write it?" not in out:
                try:
                    out += os.read(fd, 4096)
                except OSError:  # the terminal closed: fleet exited without asking
                    pytest.fail(f"fleet init never asked: {out.decode(errors='replace')}")
            os.write(fd, answer)
            while True:
                try:
                    chunk = os.read(fd, 4096)
                except OSError:  # EIO once fleet exited and closed the terminal
                    break
                if not chunk:
                    break
                out += chunk
            proc.wait(timeout=30)
        finally:
            os.close(fd)
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        return out.decode()

    shown = run(b"n\n")
    assert "[agents.explorer-1]" in shown
    assert "aborted" in shown
    assert not (repo / "fleet.toml").exists()
    run(b"y\n")
    assert "[agents.explorer-1]" in (repo / "fleet.toml").read_text()


def test_a_worker_next_to_its_config_is_refused_with_the_way_out(repo: Path) -> None:
    proc = fleet(repo, "init", "--role", "worker", "--yes")
    assert proc.returncode == 2
    assert "control_plane_exposed" in proc.stderr
    assert "--path" in proc.stderr
    assert not (repo / "fleet.toml").exists()


@pytest.fixture
def git_checkout(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A real git repository in a HOME outside /tmp: a worker may write /tmp, so under pytest's
    tmp_path it would reach the homes and the state dir and init would rightly refuse."""
    root = Path(tempfile.mkdtemp(prefix="fleet-init-", dir="/var/tmp"))
    (root / "home").mkdir()
    monkeypatch.setenv("HOME", str(root / "home"))
    for var in ("XDG_STATE_HOME", "XDG_CONFIG_HOME", "TMPDIR"):
        monkeypatch.delenv(var, raising=False)
    yield make_repo(root / "home" / "shop")
    shutil.rmtree(root, ignore_errors=True)


def test_init_in_a_git_repository_writes_workers_in_worktrees_that_doctor_passes(git_checkout: Path) -> None:
    repo = git_checkout
    head = git(repo, "rev-parse", "HEAD")
    proc = fleet(repo, "init", "--agents", "3", "--repo", ".", "--yes")
    assert proc.returncode == 0, proc.stderr
    assert "its own worktree of the repository" in proc.stdout
    for step in ("fleet doctor", "fleet up", "fleet assign --write", "fleet merge ID"):
        assert step in proc.stdout
    text = (repo / "fleet.toml").read_text()
    assert 'repo = "~/shop"' in text
    assert "\ncwd = " not in text
    doctor = fleet(repo, "doctor", "--json")
    assert doctor.returncode == 0, [c for c in json.loads(doctor.stdout)["checks"] if not c["ok"]]
    worktrees = Path.home() / ".local" / "state" / "fleet" / "shop" / "worktrees"
    status = json.loads(fleet(repo, "status", "--json").stdout)
    assert [(a["name"], a["role"], a["cwd"]) for a in status["agents"]] == [
        (f"worker-{i}", "worker", str(worktrees / f"worker-{i}")) for i in (1, 2, 3)]
    assert git(repo, "status", "--porcelain") == "?? fleet.toml\n"  # init's file, nothing else
    assert git(repo, "rev-parse", "HEAD") == head


def test_json_says_where_the_agents_work_and_why(repo: Path, git_checkout: Path) -> None:
    plain = json.loads(fleet(repo, "init", "--agents", "1", "--yes", "--json").stdout)
    assert (plain["repo"], plain["agents"][0]["repo"]) == (None, None)
    assert "no worktrees" in plain["cwd_reason"]
    done = json.loads(fleet(git_checkout, "init", "--agents", "1", "--yes", "--json").stdout)
    notes = [TMP_NOTE] if fleet_installed_in_temp() else []
    assert (done["repo"], done["base"], done["cwd_reason"], done["notes"]) == (str(git_checkout), "main", None, notes)
    assert done["agents"][0]["repo"] == str(git_checkout)
