"""Where the agent runtime's code lives: observe, launch, send and stop in their own modules, none
over the house limit, nothing in `fleet/agents/` reaching up into the installer or the service layer,
and a read-only `fleet status` loading none of the code that starts, types into or stops an agent."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

from conftest import Fleet

import fleet.agents

AGENTS = Path(fleet.agents.__file__).parent
#: The house limit on a module's length.
MAX_LINES = 500
#: Packages above `fleet.agents` (or beside it, for the installer) that it must not import, not even
#: inside a function: installing a lead's plugin is the service layer's call.
UPWARD = ("fleet.install", "fleet.service", "fleet.cli", "fleet.ops", "fleet.mcp")
#: Modules only a start, a send or a stop needs.
NOT_FOR_STATUS = ("fleet.agents.launch", "fleet.agents.send", "fleet.agents.stop", "fleet.agents.lead",
                  "fleet.agents.procs")


def imported(path: Path) -> set[str]:
    """Every module `path` imports, at any depth (functions and `TYPE_CHECKING` blocks included)."""
    package = "fleet.agents"
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = f"{package}.{base}" if base else package
            out.add(base)
            out.update(f"{base}.{alias.name}" for alias in node.names)
    return out


def test_no_agents_module_is_over_the_house_limit() -> None:
    long = {p.name: n for p in AGENTS.glob("*.py") if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert long == {}


def test_no_agents_module_imports_the_installer_or_the_service_layer() -> None:
    up = {p.name: sorted(m for m in imported(p) if m.startswith(UPWARD)) for p in AGENTS.glob("*.py")}
    assert {name: mods for name, mods in up.items() if mods} == {}


PROBE = textwrap.dedent("""
    import json, sys
    out = sys.argv[1]
    sys.argv = ["fleet", *sys.argv[2:]]
    from fleet.cli import main
    try:
        main()
    except SystemExit as exc:
        code = exc.code
    with open(out, "w") as f:
        json.dump({"code": code, "loaded": sorted(m for m in sys.modules if m.startswith("fleet"))}, f)
""")


def test_status_loads_no_code_that_starts_sends_to_or_stops_an_agent(fleet_factory: Callable[..., Fleet],
                                                                    tmp_path: Path) -> None:
    f = fleet_factory(1)
    out = tmp_path / "probe.json"
    proc = subprocess.run([sys.executable, "-c", PROBE, str(out), "--config", str(f.path), "status", "--json"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert out.exists(), proc.stderr
    probe = json.loads(out.read_text())
    assert probe["code"] in (0, None), probe
    assert "fleet.agents.observe" in probe["loaded"]
    assert sorted(set(probe["loaded"]) & set(NOT_FOR_STATUS)) == []
