"""Leases under real contention and real crashes: separate Python processes on one state dir.

Each worker appends one line per hold to a shared journal with a single O_APPEND write; holds are
timed with `time.monotonic()` (CLOCK_MONOTONIC, one clock for every process on Linux), from just
after the grant to just before the release, so any two holds that overlap broke exclusion.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from filelock import FileLock

from fleet.errors import LeaseHeld, LeaseLost
from fleet.leases import LeaseStore

REPO = Path(__file__).resolve().parents[1]
#: Holds each worker completes (a count, not a duration: the test never depends on the machine's speed).
HOLDS = int(os.environ.get("FLEET_STRESS_HOLDS", "12"))
WORKERS = 8

WORKER = textwrap.dedent(
    """
    import json, os, random, sys, time
    from fleet.errors import LeaseHeld
    from fleet.leases import LeaseStore

    state_dir, journal, holder, holds = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    store = LeaseStore(state_dir, surface="stress")
    rng = random.Random(holder)
    fd = os.open(journal, os.O_WRONLY | os.O_APPEND)

    done = 0

    def note(kind, token, start, end):
        global done
        line = json.dumps({"holder": holder, "kind": kind, "token": token, "start": start, "end": end})
        os.write(fd, (line + "\\n").encode())
        done += 1

    while done < holds:
        if rng.random() < 0.6:
            try:
                got = store.claim("a1", holder, ttl=30, wait=0.5)
            except LeaseHeld:
                continue
            start = time.monotonic()
            token = got["token"]
            if rng.random() < 0.5:
                again = store.claim("a1", holder, ttl=20)
                assert (again["status"], again["token"]) == ("renewed", token), again
            with store.guard("a1", holder, token) as lease:
                assert lease.token == token
                time.sleep(rng.uniform(0, 0.002))
            end = time.monotonic()
            note("claim", token, start, end)
            assert store.release("a1", holder)["released"]
        else:
            try:
                with store.guard("a1", holder) as lease:
                    start = time.monotonic()
                    time.sleep(rng.uniform(0, 0.002))
                    end = time.monotonic()
                    note("transient" if lease.transient else "own", lease.token, start, end)
            except LeaseHeld:
                time.sleep(rng.uniform(0, 0.003))
    """
)


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO)}


def test_contending_processes_never_overlap_and_tokens_strictly_increase(tmp_path: Path) -> None:
    state_dir, journal = tmp_path / "state", tmp_path / "grants.jsonl"
    journal.touch()
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(state_dir), str(journal), f"worker-{i}", str(HOLDS)],
            env=env(),
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(WORKERS)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=100)
        assert proc.returncode == 0, err
    holds = sorted((json.loads(line) for line in journal.read_text().splitlines()), key=lambda h: h["start"])
    assert len(holds) == WORKERS * HOLDS
    assert len({h["holder"] for h in holds}) == WORKERS
    for before, after in itertools.pairwise(holds):
        assert before["end"] <= after["start"], f"overlapping holds: {before} {after}"
        assert before["token"] < after["token"], f"tokens out of order: {before} {after}"
    assert len({h["token"] for h in holds}) == len(holds)
    assert LeaseStore(state_dir).info("a1")["state"] == "free"


HOLD_AND_DIE = textwrap.dedent(
    """
    import sys, time
    from filelock import FileLock
    from fleet.leases import LeaseStore

    state_dir = sys.argv[1]
    got = LeaseStore(state_dir).claim("a1", "doomed", ttl=1.0)
    lock = FileLock(f"{state_dir}/leases/a1.lock")
    lock.acquire()
    print(got["token"], flush=True)
    time.sleep(60)
    """
)


def test_a_holder_killed_inside_the_file_lock_leaves_no_stuck_lock(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    with subprocess.Popen(
        [sys.executable, "-c", HOLD_AND_DIE, str(state_dir)], env=env(), stdout=subprocess.PIPE, text=True
    ) as child:
        assert child.stdout is not None
        old_token = int(child.stdout.readline())
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
    store = LeaseStore(state_dir)

    with FileLock(str(state_dir / "leases" / "a1.lock"), blocking=False):
        pass  # the kernel dropped the dead holder's flock: taken at once, without waiting
    with pytest.raises(LeaseHeld) as info:
        store.claim("a1", "survivor")
    assert info.value.data["holder"] == "doomed"

    got = store.claim("a1", "survivor", wait=5)
    assert got["token"] == old_token + 1
    assert time.time() >= got["acquired_at"]
    with pytest.raises(LeaseLost), store.guard("a1", "doomed", old_token):
        pytest.fail("the dead holder's token was taken over")


CHURN = textwrap.dedent(
    """
    import sys
    from fleet.leases import LeaseStore

    store = LeaseStore(sys.argv[1])
    print("ready", flush=True)
    while True:
        store.claim("a1", sys.argv[2], ttl=1 if int(sys.argv[3]) % 2 else 30)
        with store.guard("a1", sys.argv[2]):
            pass
        store.release("a1", sys.argv[2])
    """
)


def test_holders_killed_at_random_points_leave_a_readable_record_and_rising_tokens(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    store = LeaseStore(state_dir)
    last = 0
    for round_ in range(6):
        holder = f"churn-{round_}"
        with subprocess.Popen(
            [sys.executable, "-c", CHURN, str(state_dir), holder, str(round_)],
            env=env(),
            stdout=subprocess.PIPE,
            text=True,
        ) as child:
            assert child.stdout is not None
            child.stdout.readline()
            time.sleep(0.05 + 0.03 * round_)
            child.send_signal(signal.SIGKILL)
            child.wait(timeout=10)
        lease = store.get("a1")  # must parse: a kill never leaves a torn record
        if lease is not None and lease.holder == holder:
            store.release("a1", "operator", force=True)
        got = store.claim("a1", "checker", ttl=5)
        assert got["token"] > last
        last = got["token"]
        store.release("a1", "checker")
    with FileLock(str(state_dir / "leases" / "a1.lock"), timeout=0.5):
        pass  # no dead process left its flock behind
