"""Shared fixtures: every test runs with a temp HOME, its own state dir and a private tmux socket dir.

Tests that start Codex (`fleet_factory(model=...)`, `codex_bin`, `mock_model`) live under tests/codex/
and nowhere else; they need the pinned Codex CLI installed by `scripts/setup` and must run inside
`scripts/offline` (a loopback-only network namespace); they fail with a clear message otherwise and
never fall back to running Codex with a network.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from mockmodel import MockServer
from offlinecodex import codex_offline_args

from fleet.config import tmux_socket

REPO = Path(__file__).resolve().parent.parent
CODEX_DEFAULT = REPO / ".codex-cli" / "node_modules" / ".bin" / "codex"
CODEX_TESTS = Path(__file__).resolve().parent / "codex"  # the only home of tests that start Codex


_ROOTPATH = REPO  # pytest's rootdir, which test node ids are relative to (set at start-up)


def pytest_configure(config: pytest.Config) -> None:
    global _ROOTPATH  # noqa: PLW0603 (one value per session, read by require_offline)
    _ROOTPATH = config.rootpath


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects: a stray marker is an error, not a silent skip
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    stray = [item.nodeid for item in items
             if item.get_closest_marker("codex") and CODEX_TESTS not in item.path.parents]
    if stray:
        raise pytest.UsageError(f"`codex` marker outside tests/codex/ (move these there): {stray}")


def wait_until(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.05) -> Any:
    """Poll until `predicate()` is truthy; fail the test with the last value if it never is."""
    deadline = time.monotonic() + timeout
    value = predicate()
    while not value:
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout}s (last value: {value!r})")
        time.sleep(interval)
        value = predicate()
    return value


def fleet_installed_in_temp() -> bool:
    """Whether the fleet under test (its package, Python environment or interpreter) lies under /tmp
    or $TMPDIR, as in a clone there: a workspace-write agent could write it, so `fleet init` leaves
    those out of the sandboxes (`fleet.service.init.NO_TMP_ARGS`) and says so (`TMP_NOTE`)."""
    import fleet
    from fleet.service.init import temp_roots

    ours = [Path(fleet.__file__).parent, Path(sys.prefix), Path(sys.executable)]
    return any(p.resolve().is_relative_to(root) for p in ours for root in temp_roots())


def require_offline() -> None:
    """Fail unless this is a test under tests/codex/ running in a loopback-only network namespace."""
    current = os.environ.get("PYTEST_CURRENT_TEST", "")
    if CODEX_TESTS not in (_ROOTPATH / current.split("::")[0]).resolve().parents:
        pytest.fail(f"{current or 'this code'} starts Codex: such tests live under tests/codex/ (see its conftest).")
    with open("/proc/net/dev") as f:  # per network namespace, unlike /sys/class/net
        interfaces = {line.split(":")[0].strip() for line in f.readlines()[2:]}
    if os.environ.get("FLEET_OFFLINE") != "1" or interfaces - {"lo"}:
        pytest.fail(
            "This test runs the real Codex CLI and must run inside a loopback-only network namespace: "
            "use `scripts/test` (or `scripts/offline .venv/bin/python -m pytest`). "
            f"Interfaces here: {sorted(interfaces)}."
        )


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Any]:
    """One throwaway PostgreSQL cluster for the session (tests/pgcluster.py), its schema initialised,
    stopped and removed at the end even when tests fail; started only for tests that ask for it."""
    from pgcluster import PgCluster

    from fleet.config.store import StoreSettings
    from fleet.store.admin import init_schema
    from fleet.store.db import Database

    try:
        cluster = PgCluster()
    except RuntimeError as exc:
        pytest.fail(str(exc))
    try:
        db = Database(StoreSettings(url=cluster.url(), namespace="setup"), check_schema=False)
        try:
            init_schema(db)
        finally:
            db.close()
        yield cluster
    finally:
        cluster.close()


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No test sees the user's HOME, state, config or tmux server."""
    home = tmp_path / "home"
    home.mkdir()
    tmux_dir = Path(tempfile.mkdtemp(prefix="ft-", dir="/tmp"))  # short: unix socket paths are <108 bytes
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg-state"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))
    monkeypatch.setenv("TMUX_TMPDIR", str(tmux_dir))
    for var in ("FLEET_CONFIG", "FLEET_HOME", "FLEET_HOLDER", "FLEET_STORE_URL", "TMUX", "TMUX_PANE", "CODEX_HOME"):
        monkeypatch.delenv(var, raising=False)
    yield
    shutil.rmtree(tmux_dir, ignore_errors=True)


def read_audit(state_dir: Path) -> list[dict[str, Any]]:
    """The records of `STATE_DIR/audit.jsonl`, oldest first."""
    return [json.loads(line) for line in (state_dir / "audit.jsonl").read_text().splitlines()]


@dataclass
class Fleet:
    """A fleet.toml in tmp_path with N agents, and helpers to drive it through the real CLI."""

    path: Path
    name: str
    state_dir: Path
    agents: list[str]
    root: Path
    started: list[str] = field(default_factory=list)

    def cli(self, *args: str, input_text: str | None = None, timeout: float = 90,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """Run `fleet --config PATH ARGS` as a real process."""
        return subprocess.run(
            [sys.executable, "-m", "fleet", "--config", str(self.path), *args],
            capture_output=True, text=True, input=input_text, timeout=timeout,
            env={**os.environ, **(env or {})}, check=False,
        )

    def json(self, *args: str, input_text: str | None = None, ok: bool = True) -> Any:
        proc = self.cli(*args, "--json", input_text=input_text)
        if ok:
            assert proc.returncode == 0, f"fleet {' '.join(args)} failed: {proc.stderr}\n{proc.stdout}"
        return json.loads(proc.stdout)

    def status(self, agent: str) -> dict[str, Any]:
        [entry] = self.json("status", agent)["agents"]
        return entry  # type: ignore[no-any-return]

    def journal(self, agent: str) -> list[dict[str, Any]]:
        path = self.state_dir / "agents" / agent / "events.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def audit(self) -> list[dict[str, Any]]:
        """The fleet's audit log (`audit.jsonl`), oldest first."""
        return read_audit(self.state_dir)

    def tmux(self, *args: str) -> subprocess.CompletedProcess[str]:
        socket = tmux_socket(self.name, self.state_dir.resolve())
        return subprocess.run(["tmux", "-L", socket, *args], capture_output=True, text=True,
                              check=False)


def sent_in_ledger(fleet: Fleet, agent: str, *, task: str, write_paths: Sequence[str] = (),
                   checks: Sequence[str] = ()) -> str:
    """Put an assignment to `agent` in the ledger as `fleet assign` leaves it once sent (turn t1),
    with the baseline of the agent's cwd as it is now; returns its id. No Codex needed."""
    from fleet.work.ledger import Ledger
    from fleet.work.verify import snapshot

    cwd = fleet.root / "work" / agent
    with Ledger(fleet.state_dir) as ledger:
        a, _ = ledger.create(task=task, holder="lead", actor="lead", agent=agent, write_paths=write_paths,
                             checks=checks)
        baseline = {"version": 1, "agent": agent, "role": "worker", "cwd": str(cwd),
                    "write_paths": list(write_paths), "read_paths": [], "snapshot": snapshot(cwd).to_json()}
        ledger.annotate(a.id, "baseline", actor="test", baseline=baseline)
        ledger.transition(a.id, "sent", actor="test", turn_id="t1", agent=agent)
    return a.id


@pytest.fixture
def fleet_factory(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Callable[..., Fleet]]:
    """Make a fleet config. With `model=` (a MockServer) its agents run real Codex against it; with
    `catalog=True` also with the `model_catalog` that makes Codex offer apply_patch to the mock."""
    made: list[Fleet] = []

    def make(n: int = 1, model: MockServer | None = None, codex: str | None = None,
             extra: str = "", agent_extra: str = "", codex_args: tuple[str, ...] = (),
             catalog: bool = False) -> Fleet:
        name = f"t{uuid.uuid4().hex[:10]}"
        root = tmp_path / name
        root.mkdir()
        agents = [f"agent-{i}" for i in range(1, n + 1)]
        lines = ["[fleet]", f'name = "{name}"', f'state_dir = "{root / "state"}"', "", "[defaults]"]
        if model is not None:
            require_offline()
            codex = codex or request.getfixturevalue("codex_bin")
            if catalog:
                path = request.getfixturevalue("model_catalog")
                codex_args = ("-c", f"model_catalog_json={json.dumps(str(path))}", *codex_args)
            lines.append(f"args = {json.dumps([*codex_offline_args(model.url), *codex_args])}")
        if codex:
            lines.append(f"codex = {json.dumps(codex)}")
        lines.append(extra)
        for agent in agents:
            (root / "work" / agent).mkdir(parents=True)
            lines += ["", f"[agents.{agent}]", f'home = "{root / "homes" / agent}"',
                      f'cwd = "{root / "work" / agent}"', agent_extra]
        path = root / "fleet.toml"
        path.write_text("\n".join(lines) + "\n")
        fleet = Fleet(path=path, name=name, state_dir=root / "state", agents=agents, root=root)
        made.append(fleet)
        return fleet

    yield make
    for fleet in made:  # reap: only the servers these tests started
        own = fleet.state_dir / "tmux.sock"  # where the socket goes without TMUX_TMPDIR
        for where in (["-L", tmux_socket(fleet.name, fleet.state_dir.resolve())], ["-S", str(own)]):
            if where[0] == "-S" and not own.exists():
                continue
            def tmux(*args: str, where: list[str] = where) -> subprocess.CompletedProcess[str]:
                return subprocess.run(["tmux", *where, *args], capture_output=True, text=True, check=False)
            out = tmux("list-panes", "-a", "-F", "#{pane_pid}").stdout.split()
            tmux("kill-server")
            for pid in out:
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), 9)
