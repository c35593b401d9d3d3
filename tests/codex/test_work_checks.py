"""Check commands with the real Codex: the `codex sandbox` prefix for the pinned binary, and real check
processes run through the real Codex sandbox (so these need `scripts/offline`).

The hostile agent here is whoever wrote the check's program (a conftest, a Makefile): each check
tries what such a program would try, and must fail or see nothing."""

from __future__ import annotations

import os
import shlex
import shutil
import socket
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from checksandbox import FLEET_SECRETS, spec_for
from conftest import require_offline, wait_until

from fleet.agents.codex import effective_sandbox, sandbox_argv
from fleet.agents.writable import agent_roots
from fleet.work import checks
from fleet.work.checks import SANDBOX_MOUNT_POINTS, Sandbox, check_env, run_checks

# -- the sandbox prefix -------------------------------------------------------------------------------

def test_the_sandbox_prefix_carries_the_agents_settings_and_ends_with_its_mode(tmp_path: Path, codex_bin: str) -> None:
    args = ("-c", "sandbox_workspace_write.network_access=true", "--enable", "x", "-m", "gpt", "--search",
            "--config=a=1", "-cb=2", "--disable=y", "-p", "prof", "-c", 'sandbox_mode="danger-full-access"')
    argv = sandbox_argv(spec_for(tmp_path, codex_bin, args=args))
    assert argv[1] == "sandbox"
    assert argv[2:] == ["--config=sandbox_workspace_write.network_access=true", "--enable=x", "--config=a=1",
                        "--config=b=2", "--disable=y", "--profile=prof", '--config=sandbox_mode="danger-full-access"',
                        '--config=sandbox_mode="workspace-write"', "--"]  # the agent's mode has the last word


def test_a_sandbox_bypass_in_the_args_is_full_access(tmp_path: Path, codex_bin: str) -> None:
    spec = spec_for(tmp_path, codex_bin, sandbox="read-only", args=("--dangerously-bypass-approvals-and-sandbox",))
    assert effective_sandbox(spec) == "danger-full-access"
    assert sandbox_argv(spec)[-2:] == ['--config=sandbox_mode="danger-full-access"', "--"]


# -- real checks in the real Codex sandbox ------------------------------------------------------------

SandboxOf = Callable[..., tuple[Sandbox, Path]]

@pytest.fixture
def home_outside_tmp(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """HOME in a directory outside /tmp, which workspace-write leaves writable (Codex's `slash_tmp`)."""
    home = Path(tempfile.mkdtemp(prefix="fleet-check-home-", dir="/var/tmp"))
    monkeypatch.setenv("HOME", str(home))
    yield home
    shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def sandbox_of(tmp_path: Path, codex_bin: str, monkeypatch: pytest.MonkeyPatch, home_outside_tmp: Path) -> SandboxOf:
    """A factory: the Sandbox fleet builds for an agent with this mode and args, while fleet's own
    environment holds `FLEET_SECRETS`."""
    require_offline()
    for key, value in FLEET_SECRETS.items():
        monkeypatch.setenv(key, value)

    def make(mode: str = "workspace-write", args: tuple[str, ...] = ()) -> tuple[Sandbox, Path]:
        spec = spec_for(tmp_path, codex_bin, mode, args)
        env = {**check_env(os.environ, spec.env), "CODEX_HOME": str(spec.home)}
        mode = effective_sandbox(spec)
        roots = tuple(str(p) for p in agent_roots(spec).roots) if mode == "workspace-write" else ()
        return Sandbox(argv=tuple(sandbox_argv(spec)), env=env, mode=mode, roots=roots), spec.cwd

    return make


def test_checks_record_exit_status_and_the_tail_of_their_output(sandbox_of: SandboxOf) -> None:
    sandbox, cwd = sandbox_of()
    ok, bad = run_checks(["echo hello; echo err >&2", "seq 1 20000; exit 3"], cwd, 60, sandbox)
    assert (ok.passed, ok.ran, ok.exit_status, ok.sandbox) == (True, True, 0, "workspace-write")
    assert ok.output_tail.endswith("hello\nerr\n")
    assert (bad.passed, bad.ran, bad.exit_status) == (False, True, 3)
    assert bad.output_tail.endswith("19999\n20000\n")
    assert len(bad.output_tail) == checks.OUTPUT_TAIL_CHARS


def test_checks_run_in_the_cwd_with_no_stdin(sandbox_of: SandboxOf) -> None:
    sandbox, cwd = sandbox_of()
    [check] = run_checks(["pwd; cat; echo done"], cwd, 60, sandbox)
    assert check.output_tail.endswith(f"{cwd}\ndone\n")


def test_a_check_sees_none_of_fleets_secrets(sandbox_of: SandboxOf) -> None:
    """Not in its environment, nor in any process's environment it can read."""
    sandbox, cwd = sandbox_of()
    patterns = " ".join(f"-e {shlex.quote(v)}" for v in FLEET_SECRETS.values())
    in_proc = f"echo PROC=$(cat /proc/*/environ 2>/dev/null | tr '\\0' '\\n' | grep -c -F {patterns})"
    [check] = run_checks([f"{in_proc}; env; echo END"], cwd, 60, sandbox)
    assert check.passed
    assert check.output_tail.endswith("END\n")
    assert "PROC=0\n" in check.output_tail  # nor through /proc: fleet's processes are not in its namespace
    seen = dict(line.split("=", 1) for line in check.output_tail.splitlines() if "=" in line)
    assert not set(seen) & set(FLEET_SECRETS)
    assert not any(v in check.output_tail for v in FLEET_SECRETS.values())
    assert seen["HOME"] == os.environ["HOME"]


def test_a_workspace_write_check_cannot_write_home_but_can_write_its_cwd(sandbox_of: SandboxOf) -> None:
    sandbox, cwd = sandbox_of()
    planted = Path(os.environ["HOME"]) / ".bashrc"  # the user's own, as far as the sandbox knows
    home_write, cwd_write = run_checks([f"echo evil >> {planted}", "echo fine > out.txt"], cwd, 60, sandbox)
    assert (home_write.ran, home_write.passed) == (True, False)
    assert "Read-only file system" in home_write.output_tail
    assert not planted.exists()
    assert cwd_write.passed
    assert (cwd / "out.txt").read_text() == "fine\n"


def test_a_read_only_agents_check_runs_but_cannot_write(sandbox_of: SandboxOf) -> None:
    sandbox, cwd = sandbox_of("read-only")
    (cwd / "data.txt").write_text("42\n")
    read, write = run_checks(["cat data.txt", "echo x > new.txt"], cwd, 60, sandbox)
    assert read.passed
    assert read.output_tail.endswith("42\n")
    assert (write.ran, write.passed, write.sandbox) == (True, False, "read-only")
    assert not (cwd / "new.txt").exists()


@pytest.fixture
def listener() -> Iterator[int]:
    """A TCP server on 127.0.0.1 that counts the connections it accepts."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    accepted: list[int] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            accepted.append(1)
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    server.close()


CONNECT = ("python3 -c 'import socket,sys; socket.create_connection((\"127.0.0.1\", int(sys.argv[1])), 5); "
           "print(\"CONNECTED\")' {port}")


def test_a_check_reaches_the_network_only_if_its_agent_may(sandbox_of: SandboxOf, listener: int) -> None:
    closed, _ = sandbox_of()
    opened, cwd = sandbox_of(args=("-c", "sandbox_workspace_write.network_access=true"))
    [denied_net] = run_checks([CONNECT.format(port=listener)], cwd, 60, closed)
    [allowed_net] = run_checks([CONNECT.format(port=listener)], cwd, 60, opened)
    assert (denied_net.ran, denied_net.passed) == (True, False)
    assert "CONNECTED" not in denied_net.output_tail
    assert allowed_net.passed
    assert "CONNECTED" in allowed_net.output_tail


def test_a_timed_out_check_is_killed_with_everything_in_its_sandbox(sandbox_of: SandboxOf) -> None:
    sandbox, cwd = sandbox_of()
    [check] = run_checks(["setsid sleep 3171 & sleep 3172 & wait"], cwd, 1, sandbox)
    assert (check.timed_out, check.exit_status, check.passed) == (True, None, False)
    wait_until(lambda: not _running("3171") and not _running("3172"), timeout=10)


def test_a_check_that_leaves_a_background_process_does_not_leave_it_running(sandbox_of: SandboxOf) -> None:
    sandbox, cwd = sandbox_of()
    [check] = run_checks(["setsid sleep 3173 </dev/null >/dev/null 2>&1 &"], cwd, 60, sandbox)
    assert check.passed
    wait_until(lambda: not _running("3173"), timeout=10)


def test_a_sandbox_that_cannot_start_runs_nothing_and_fails(sandbox_of: SandboxOf, tmp_path: Path) -> None:
    sandbox, cwd = sandbox_of()
    broken = Sandbox(argv=sandbox.argv, env={**sandbox.env, "CODEX_HOME": str(tmp_path / "gone")}, mode=sandbox.mode)
    [check] = run_checks(["touch ran.txt; exit 0"], cwd, 60, broken)
    assert (check.ran, check.passed) == (False, False)
    assert "sandbox did not start" in check.output_tail
    assert not (cwd / "ran.txt").exists()


def test_a_check_that_cannot_start_fails_without_raising(sandbox_of: SandboxOf, tmp_path: Path) -> None:
    sandbox, _ = sandbox_of()
    [check] = run_checks(["true"], tmp_path / "missing", 60, sandbox)
    assert (check.ran, check.passed) == (False, False)
    assert "could not be started" in check.output_tail


def _running(marker: str) -> bool:
    """Whether any live process has `marker` as an argument (pids inside the sandbox are not ours)."""
    for pid in (name for name in os.listdir("/proc") if name.isdigit()):
        try:
            args = Path("/proc", pid, "cmdline").read_bytes().split(b"\0")
            state = Path("/proc", pid, "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if marker.encode() in args and state != "Z":
            return True
    return False


def test_a_killed_check_leaves_no_sandbox_mount_points_in_the_cwd(sandbox_of: SandboxOf,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Codex's sandbox makes empty `.git`, `.codex`, `.agents`, `.aws` mount points in the cwd and
    leaves them when it is SIGKILLed; an empty `.git` would make the cwd look like a repository.
    Codex cleans up on SIGTERM, so the timeout's TERM is swapped for KILL here: that simulates a
    sandbox that did not end within the grace time, the one path that reaches SIGKILL."""
    import signal

    from fleet.work import checks

    real_killpg = checks._killpg
    monkeypatch.setattr(checks, "_killpg", lambda pgid, sig: real_killpg(pgid, signal.SIGKILL))
    sandbox, cwd = sandbox_of()
    assert "/tmp" in sandbox.roots  # Codex makes its mount points in every writable root
    (cwd / ".codex").mkdir()
    (cwd / ".codex" / "keep.toml").write_text("x = 1\n")  # the user's own: kept
    def mount_points() -> dict[str, list[str]]:  # only these names: other processes use /tmp too
        return {root: [n for n in SANDBOX_MOUNT_POINTS if os.path.lexists(os.path.join(root, n))]
                for root in (str(cwd), *sandbox.roots)}

    before = mount_points()
    assert before[str(cwd)] == [".codex"]
    [check] = run_checks(["trap '' TERM; ls -a; sleep 30"], cwd, 1, sandbox)
    assert check.timed_out
    assert ".git" in check.output_tail  # the mount point was there while the check ran
    assert mount_points() == before
    assert (cwd / ".codex" / "keep.toml").read_text() == "x = 1\n"


