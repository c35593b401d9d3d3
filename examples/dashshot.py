"""The README's picture of the dashboard: `docs/dash.png`, from a real run.

`scripts/dash-screenshot [OUT.png]` runs this inside a loopback-only network namespace. It starts the
demo's kind of fleet (examples/demo.py: real Codex against the bundled scripted model, in a private
directory of the user's state, with its own HOME) with four agents in different states: noor has
finished a verified assignment, otto answered a prompt under a lead's lease, mila is in the middle
of an assignment (the model's reply is held back until the picture is taken), ines is stopped. The
watchdog ticks once. Then `fleet dash --web --read-only` serves the cockpit, headless Chromium opens
its URL (examples/browsershot.py) and the PNG goes to OUT.png (default docs/dash.png). It fails
loudly if the page did not draw the agent table. Nothing it starts outlives it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

from browsershot import shoot
from demo import PATCH, REPORT, _run, demo_fleet, stop_all, wait_for_state
from mockmodel import MockModel
from mocksteps import Step

#: otto first: the selected row, whose screen the picture shows (the others' show prompts with paths)
AGENTS = {"otto": "explorer", "mila": "worker", "noor": "worker", "ines": "explorer"}


def main(out: Path) -> None:
    model = MockModel(default_text="Report: the repository has one README and no tests; nothing risky.")
    model.script(Step(tool=("apply_patch", {"input": PATCH})), Step(text=REPORT))
    held = threading.Event()
    with demo_fleet(model, AGENTS) as config:
        home = config.parent / "home"  # nothing here reads or writes the user's own HOME
        home.mkdir()
        os.environ["HOME"] = str(home)
        os.environ["USER"] = os.environ["LOGNAME"] = "demo"  # the CLI's holder is cli:demo, not the login name
        try:
            _stage(config, model, held)
            served = subprocess.Popen(
                [sys.executable, "-P", "-m", "fleet", "--config", str(config), "dash", "--web", "--read-only"],
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                env={**os.environ, "PYTHONUNBUFFERED": "1"})
            try:
                assert served.stdout is not None
                url = served.stdout.readline().strip()
                shot = shoot(url, out, expect="ines", settle=3)
            finally:
                served.terminate()
                served.wait(timeout=10)
        finally:
            held.set()
            stop_all(config, AGENTS)
    print(f"dash-screenshot: wrote {out} ({shot.width}x{shot.height}, {shot.colours} colours)")


def _stage(config: Path, model: MockModel, held: threading.Event) -> None:
    """Bring the agents into the states the picture shows."""
    _run(config, "up", "mila", "noor", "otto")
    done = json.loads(_run(config, "assign", "--to", "noor", "--write", "notes/", "--check",
                           "test -f notes/summary.md", "--deadline", "10m", "--json",
                           "Summarise README.md in notes/summary.md.").stdout)["assignment"]
    _run(config, "wait", done, "--timeout", "60")
    _run(config, "claim", "otto", "--holder", "lead", "--ttl", "3600")
    _run(config, "send", "otto", "Survey the repository and report risks.", "--holder", "lead")
    if not wait_for_state(config, "otto", "idle"):
        raise SystemExit("dash-screenshot: otto's turn did not finish")
    _run(config, "watchdog", "tick")
    model.script(Step(text=REPORT, gate=held))  # mila's reply waits until the picture is taken
    _run(config, "assign", "--to", "mila", "--write", "src/", "--deadline", "30m",
         "Add a CONTRIBUTING.md that says how to run the tests.")
    if not wait_for_state(config, "mila", "working"):
        raise SystemExit("dash-screenshot: mila never started working")
    _run(config, "status")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("docs/dash.png"))
