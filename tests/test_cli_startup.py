"""What a CLI call loads, typer's usage errors in fleet's format, and the registry's lazy handlers.

Speed itself is measured in bench/bench_cli.py; these tests pin what makes it: which heavy modules
a command imports, and that every registry entry still resolves to a handler taking its schema.
"""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import Fleet

from fleet import ops

#: Modules whose import costs tens of milliseconds; the commands below need none of them.
HEAVY = ("pydantic", "jsonschema", "libtmux", "mcp", "anyio", "rich", "ctypes", "psycopg")
#: Lighter ones (a few ms each, ~25 ms together with filelock's own) that fleet imports only on the
#: paths that use them: hashing a prompt, a contended claim's jitter, a paste file, stopping agents in
#: threads, logging a failure. The lease store takes a plain flock instead of importing filelock.
ON_DEMAND = ("filelock", "logging", "hashlib", "secrets", "random", "tempfile", "concurrent", "getpass")
#: fleet's modules that only a start, a send or a stop needs: a read-only `fleet status` loads none.
NOT_FOR_STATUS = ("fleet.agents.launch", "fleet.agents.send", "fleet.agents.stop", "fleet.agents.lead",
                  "fleet.agents.procs")

PROBE = textwrap.dedent("""
    import json, sys
    out = sys.argv[1]
    sys.argv = ["fleet", *sys.argv[2:]]
    from fleet.cli import main
    try:
        main()
    except SystemExit as exc:
        code = exc.code
    loaded = sorted({m.split(".")[0] for m in sys.modules})
    fleet = sorted(m for m in sys.modules if m.startswith("fleet."))
    with open(out, "w") as f:
        json.dump({"code": code, "loaded": loaded, "fleet": fleet}, f)
""")


def run_probe(tmp_path: Path, *args: str) -> dict[str, object]:
    out = tmp_path / "probe.json"
    proc = subprocess.run([sys.executable, "-c", PROBE, str(out), *args], capture_output=True, text=True,
                          timeout=60, check=False)
    assert out.exists(), proc.stderr
    result: dict[str, object] = json.loads(out.read_text())
    return result


@pytest.mark.parametrize("args", [
    pytest.param(("--version",), id="version"),
    pytest.param(("status",), id="status"),
    pytest.param(("status", "--json", "agent-1"), id="status-json"),
    pytest.param(("leases",), id="leases"),
    pytest.param(("claim", "agent-1", "--holder", "alice"), id="claim"),
    pytest.param(("release", "agent-1", "--holder", "alice"), id="release"),
    pytest.param(("claim", "agent-1", "--token", "x"), id="usage-error"),
])
def test_common_commands_load_no_heavy_library(fleet_factory: Callable[..., Fleet], tmp_path: Path,
                                               args: tuple[str, ...]) -> None:
    f = fleet_factory(1)
    f.json("claim", "agent-1", "--holder", "bob")  # a held lease: status and leases read a record
    f.json("release", "agent-1", "--holder", "bob")
    probe = run_probe(tmp_path, "--config", str(f.path), *args)
    assert probe["code"] in (0, 2), probe
    loaded = set(probe["loaded"])  # type: ignore[arg-type]
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))
    assert not loaded & set(ON_DEMAND), sorted(loaded & set(ON_DEMAND))


def test_status_loads_no_code_that_starts_sends_to_or_stops_an_agent(fleet_factory: Callable[..., Fleet],
                                                                    tmp_path: Path) -> None:
    f = fleet_factory(1)
    probe = run_probe(tmp_path, "--config", str(f.path), "status", "--json")
    assert probe["code"] in (0, None), probe
    loaded = set(probe["fleet"])  # type: ignore[arg-type]
    assert "fleet.agents.observe" in loaded
    assert sorted(loaded & set(NOT_FOR_STATUS)) == []


def test_an_invalid_argument_still_gets_jsonschemas_message(fleet_factory: Callable[..., Fleet]) -> None:
    f = fleet_factory(1)
    proc = f.cli("claim", "agent-1", "--ttl", "0", "--json")
    assert proc.returncode == 2
    error = json.loads(proc.stdout)["error"]
    assert (error["code"], error["key"]) == ("invalid_input", "$.ttl")
    assert "minimum" in error["message"]


@pytest.mark.parametrize(("args", "words"), [
    pytest.param(("claim", "agent-1", "--token", "abc"), ("--token", "'abc' is not a valid integer"), id="bad-int"),
    pytest.param(("claim",), ("Missing argument", "agent"), id="missing-argument"),
    pytest.param(("claim", "agent-1", "--colour", "red"), ("No such option", "--colour"), id="unknown-option"),
    pytest.param(("frobnicate",), ("No such command", "frobnicate"), id="unknown-command"),
    pytest.param(("release", "agent-1", "--token"), ("--token", "requires an argument"), id="option-without-value"),
])
def test_usage_errors_come_out_in_fleets_format(fleet_factory: Callable[..., Fleet], args: tuple[str, ...],
                                               words: tuple[str, ...]) -> None:
    f = fleet_factory(1)
    plain = f.cli(*args)
    assert plain.returncode == 2
    [line] = plain.stderr.strip().splitlines()
    assert line.startswith("fleet: invalid_input: ")
    assert "--help` for the arguments.)" in line
    for word in words:
        assert word in line
    assert plain.stdout == ""
    as_json = f.cli(*args, "--json") if args != ("release", "agent-1", "--token") else f.cli(
        "release", "agent-1", "--json", "--token")
    assert as_json.returncode == 2
    assert len(as_json.stderr.strip().splitlines()) == 1
    error = json.loads(as_json.stdout)["error"]
    assert error["code"] == "invalid_input"
    assert error["hint"].startswith("See `fleet")
    assert error["message"].endswith(".")


def test_bare_fleet_prints_the_help_and_exits_2() -> None:
    proc = subprocess.run([sys.executable, "-m", "fleet"], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 2
    assert "Commands" in proc.stderr
    assert "claim" in proc.stderr


def test_help_of_one_command_and_of_all_still_work() -> None:
    one = subprocess.run([sys.executable, "-m", "fleet", "claim", "--help"], capture_output=True, text=True,
                         timeout=60, check=False)
    assert one.returncode == 0
    assert "--token" in one.stdout
    everything = subprocess.run([sys.executable, "-m", "fleet", "--help"], capture_output=True, text=True,
                                timeout=60, check=False)
    assert everything.returncode == 0
    groups: dict[str, str] = {}
    for op in ops.REGISTRY.values():
        first, _, sub = op.cli.partition(" ")  # `watchdog tick`: the group, then its command
        assert first in everything.stdout
        if sub and first not in groups:
            group = subprocess.run([sys.executable, "-m", "fleet", first, "--help"], capture_output=True,
                                   text=True, timeout=60, check=False)
            assert group.returncode == 0
            groups[first] = group.stdout
        assert not sub or sub in groups[first]
    assert set(groups) == {"watchdog", "store"}


@pytest.mark.parametrize("name", sorted({**ops.REGISTRY, **ops.INTERNAL}))
def test_every_registered_handler_resolves_and_takes_exactly_its_schemas_arguments(name: str) -> None:
    op = ops.REGISTRY.get(name) or ops.INTERNAL[name]
    params = inspect.signature(op.run).parameters
    first, *rest = params.values()
    assert first.name == "svc"
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in rest), name
    assert {p.name for p in rest} == set(op.input_schema["properties"]), name
    required = {p.name for p in rest if p.default is inspect.Parameter.empty}
    # what callers must pass, or the schema fills in from its defaults
    assert required == set(op.input_schema["required"]) | set(op.defaults), name


def test_importing_the_registry_loads_no_handler_module() -> None:
    code = "import sys, fleet.ops; print(sorted(m for m in sys.modules if m.startswith('fleet.service')))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert proc.stdout.strip() == "[]"
