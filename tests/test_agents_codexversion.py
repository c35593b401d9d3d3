"""Which Codex release an agent runs, and whether fleet is tested with it (`fleet.agents.codexversion`),
as `fleet doctor` reports it. The binaries here are stub scripts printing a version: this tests fleet's
reading of them (the real releases are run by tests/codex/, on both installs `scripts/setup` makes).
Also: the pin, the previous release and the list of tests run on it agree across scripts and code."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from conftest import REPO, Fleet
from hypothesis import given
from hypothesis import strategies as st

from fleet.agents import codexversion
from fleet.agents.codexversion import PINNED, TESTED_RANGE, Version, binary_version, is_tested, parse_version

NUMBER = st.integers(min_value=0, max_value=999_999)
PRE = st.from_regex(r"-(alpha|beta|rc)\.[0-9]{1,3}", fullmatch=True)


def stub(path: Path, body: str) -> Path:
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)
    return path


# ---- parsing and the range ----------------------------------------------------------------------

def test_parse_reads_the_release_codex_prints() -> None:
    assert parse_version("codex-cli 0.171.0\n") == Version(0, 171, 0)
    assert parse_version("codex-cli 0.172.0-alpha.3") == Version(0, 172, 0, "-alpha.3")
    assert str(parse_version("codex-cli 0.172.0-alpha.3")) == "0.172.0-alpha.3"
    for nothing in ("", "\n", "codex-cli dev", "codex-cli 0.171", "codex-cli v0.171.0", "codex-cli 0.171.0.1",
                    "error\ncodex-cli 0.171.0"):  # only the first line counts
        assert parse_version(nothing) is None, nothing


@given(NUMBER, NUMBER, NUMBER, st.one_of(st.just(""), PRE), st.sampled_from(["codex-cli ", "", "Codex "]))
def test_parse_reads_back_any_printed_release(major: int, minor: int, patch: int, pre: str, prefix: str) -> None:
    version = Version(major, minor, patch, pre)
    assert parse_version(f"{prefix}{version}\nmore text 9.9.9\n") == version


def test_the_TESTED_RANGE_holds_the_pin_and_the_previous_release() -> None:
    assert TESTED_RANGE == "0.169.0 .. 0.171.x"
    for tested in ("0.169.0", "0.169.1", "0.170.0", "0.171.0", "0.171.12", PINNED):
        assert is_tested(Version(*map(int, tested.split(".")))), tested
    for untested in ((0, 168, 9), (0, 172, 0), (1, 169, 0), (1, 0, 0), (0, 0, 0)):
        assert not is_tested(Version(*untested)), untested
    assert not is_tested(Version(0, 171, 0, "-alpha.1"))  # no pre-release is ever pinned


@given(NUMBER, NUMBER, NUMBER, st.one_of(st.just(""), PRE))
def test_tested_means_a_final_release_of_a_tested_minor(major: int, minor: int, patch: int, pre: str) -> None:
    tested = is_tested(Version(major, minor, patch, pre))
    assert tested == (not pre and major == 0 and minor in (169, 170, 171))
    if tested:  # every patch release of a tested minor is tested, whatever its number
        assert all(is_tested(Version(major, minor, p)) for p in (0, patch + 1))


# ---- reading a binary ---------------------------------------------------------------------------

def test_a_binarys_version_is_read_once_per_file(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    codex = stub(tmp_path / "codex", f"echo run >> {runs}\necho codex-cli 0.171.0")
    assert binary_version(codex) == Version(0, 171, 0)
    assert binary_version(codex) == Version(0, 171, 0)
    assert runs.read_text().count("run") == 1
    stub(codex, f"echo run >> {runs}\necho codex-cli 0.172.10")  # replaced: another size
    assert binary_version(codex) == Version(0, 172, 10)
    assert runs.read_text().count("run") == 2


def test_a_binary_that_fails_or_names_no_release_has_no_version_and_is_asked_again(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    failing = stub(tmp_path / "failing", f"echo run >> {runs}\necho codex-cli 0.171.0\nexit 3")
    assert binary_version(failing) is None
    assert binary_version(failing) is None
    assert runs.read_text().count("run") == 2  # a failure is not cached
    assert binary_version(stub(tmp_path / "odd", "echo hello")) is None
    assert binary_version(tmp_path / "missing") is None
    assert binary_version(stub(tmp_path / "stderr", "echo codex-cli 0.169.1 >&2")) == Version(0, 169, 1)


# ---- fleet doctor -------------------------------------------------------------------------------

def doctor(f: Fleet) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    result = json.loads(f.cli("doctor", "--json").stdout)
    return result, {c["name"]: c for c in result["checks"]}


def test_doctor_names_each_agents_codex_release_and_warns_of_an_untested_one(
        fleet_factory: Callable[..., Fleet], tmp_path: Path) -> None:
    tested = fleet_factory(2, codex=str(stub(tmp_path / "codex-tested", "echo codex-cli 0.169.1")))
    result, checks = doctor(tested)
    assert result["codex_tested"] == TESTED_RANGE
    for agent in tested.agents:
        check = checks[f"codex {agent}"]
        assert (check["ok"], check["agent"], check["version"], check["tested"]) == (True, agent, "0.169.1", True)
        assert check["detail"].endswith("(codex-cli 0.169.1, tested)")
        assert "warnings" not in check

    newer = fleet_factory(2, codex=str(stub(tmp_path / "codex-newer", "echo codex-cli 0.172.0")))
    untested_result, checks = doctor(newer)
    check = checks["codex agent-1"]
    assert (check["ok"], check["version"], check["tested"]) == (True, "0.172.0", False)
    assert check["detail"].endswith(f"(codex-cli 0.172.0, untested (tested: {TESTED_RANGE}))")
    [warning] = check["warnings"]
    assert "0.172.0" in warning
    assert PINNED in warning
    assert untested_result["ok"] == result["ok"]  # a warning, never a failure
    text = newer.cli("doctor").stdout
    assert re.search(r"^warn codex agent-2: Codex 0\.172\.0 is outside", text, re.M), text


def test_doctor_fails_a_codex_that_names_no_release_or_is_missing(fleet_factory: Callable[..., Fleet],
                                                                  tmp_path: Path) -> None:
    f = fleet_factory(1, codex=str(stub(tmp_path / "codex", "echo not a codex")))
    proc = f.cli("doctor", "--json")
    check = {c["name"]: c for c in json.loads(proc.stdout)["checks"]}["codex agent-1"]
    assert proc.returncode == 1
    assert (check["ok"], check["version"], check["tested"]) == (False, None, False)
    assert "--version" in check["hint"]
    assert PINNED in check["hint"]
    missing = fleet_factory(1, codex=str(tmp_path / "nothing-here"))
    check = doctor(missing)[1]["codex agent-1"]
    assert (check["ok"], check["version"]) == (False, None)
    assert PINNED in check["hint"]


# ---- the pin, the previous release and its tests agree everywhere -------------------------------

def setting(text: str, name: str) -> str:
    match = re.search(rf"^{name}=(\S+)", text, re.M)
    assert match, name
    return match[1]


def test_setup_test_and_code_name_the_same_releases_and_tests() -> None:
    setup = (REPO / "scripts" / "setup").read_text()
    assert setting(setup, "CODEX_VERSION") == PINNED == codexversion.PINNED
    previous = parse_version(setting(setup, "CODEX_PREVIOUS_VERSION"))
    assert previous is not None
    assert is_tested(previous)
    assert previous[:2] == codexversion.TESTED_LOW[:2]  # the oldest tested line is the one CI runs
    prefix = f".codex-cli-{previous.major}.{previous.minor}"
    assert f"--prefix {prefix} " in setup
    assert f"$PWD/{prefix}/node_modules/.bin/codex" in (REPO / "scripts" / "test").read_text()
    assert f"{prefix}/" in (REPO / ".gitignore").read_text().splitlines()
    listed = [ln.split("#")[0].strip() for ln in (REPO / "tests" / "codex" / "previous.txt").read_text().splitlines()]
    names = [n for n in listed if n]
    assert names
    assert len(names) == len(set(names))
    for name in names:
        assert re.fullmatch(r"test_\w+\.py", name), name
        assert (REPO / "tests" / "codex" / name).is_file(), name
