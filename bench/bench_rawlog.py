"""Supervisor overhead per running agent: the memory of the raw-log copier fleet keeps per pane.

    .venv/bin/python bench/bench_rawlog.py [--agents 20] [--seconds 5] [--python]

Starts a private tmux server (its own socket dir) with N panes that print like a busy TUI, attaches
to each exactly the copier fleet attaches (`fleet.agents.codex.rawlog_command`, through tmux
pipe-pane), lets them run, then sums the PSS (`/proc/<pid>/smaps_rollup`) of every process tmux
runs for each pipe: that is what fleet keeps alive per agent besides Codex itself. Reported: the
median and max per agent, the process names, and the log sizes (they must stay within 2 x the
bound). `--python` forces the copier's Python fallback (PATH emptied for it), the figure before
the shell loop. Everything is killed at the end, even on error. No Codex and no network needed.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from fleet.agents.codex import RAWLOG_MAX, rawlog_command  # noqa: E402 -- after the path set-up above

#: What each pane prints: a few hundred bytes every 50 ms, like a TUI redrawing a status line.
PANE_PROGRAM = ("i=0; while :; do i=$((i+1)); "
                "printf '\\033[2K\\r working %s %s\\n' $i \"$(date +%T.%N)\"; sleep 0.05; done")


def children(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                stat = Path(f"/proc/{entry}/stat").read_text()
                if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                    out.append(int(entry))
    return out


def tree(pid: int) -> list[int]:
    out = [pid]
    for child in children(pid):
        out += tree(child)
    return out


def pss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    return 0


def comm(pid: int) -> str:
    return Path(f"/proc/{pid}/comm").read_text().strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agents", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--python", action="store_true", help="force the copier's Python fallback")
    args = parser.parse_args()
    print("$", shlex.join([Path(sys.executable).name, *sys.argv]))
    tmp = Path(tempfile.mkdtemp(prefix="fb-raw-", dir="/tmp"))
    env = {**os.environ, "TMUX_TMPDIR": str(tmp)}
    env.pop("TMUX", None)

    def tmux(*argv: str) -> str:
        return subprocess.run(["tmux", "-L", "bench-rawlog", "-f", "/dev/null", *argv], env=env, check=True,
                              capture_output=True, text=True).stdout

    try:
        for i in range(args.agents):
            tmux("new-session", "-d", "-s", f"a{i}", "-x", "200", "-y", "50", PANE_PROGRAM)
            command = rawlog_command(tmp / f"raw-{i}.log")
            if args.python:
                command = "env PATH=/nonexistent " + command
            tmux("pipe-pane", "-o", "-t", f"=a{i}:", command)
        time.sleep(args.seconds)
        server = int(tmux("display-message", "-p", "#{pid}").strip())
        panes = {int(p) for p in tmux("list-panes", "-a", "-F", "#{pane_pid}").split()}
        per_agent, names = [], set()
        for top in children(server):
            if top in panes:
                continue
            pids = tree(top)
            names.update(comm(p) for p in pids)
            per_agent.append(sum(pss_kib(p) for p in pids))
        sizes = [p.stat().st_size for p in tmp.glob("raw-*.log*")]
        mode = "python fallback" if args.python else "as fleet runs it"
        print(f"raw-log copier ({mode}), {args.agents} agents, after {args.seconds:g} s: PSS per agent "
              f"median {statistics.median(per_agent) / 1024:.2f} MiB, max {max(per_agent) / 1024:.2f} MiB "
              f"(processes: {', '.join(sorted(names))}); target <= 5 MiB")
        print(f"logs: {len(sizes)} files, largest {max(sizes)} bytes (bound {RAWLOG_MAX} per file)")
        if len(per_agent) != args.agents or max(sizes) > RAWLOG_MAX:
            raise SystemExit("bench_rawlog: a copier is missing or a log passed its bound")
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):
            for pid in {int(p) for p in tmux("list-panes", "-a", "-F", "#{pane_pid}").split()}:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            tmux("kill-server")
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
