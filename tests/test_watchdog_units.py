"""The watchdog's systemd units: rendering, `systemd-analyze verify`, install/uninstall/status with and
without a user manager, and the templates shipping inside a built wheel."""

from __future__ import annotations

import getpass
import os
import shutil
import stat
import subprocess
import sys
import zipfile
from collections.abc import Sequence
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleet.errors import InvalidInput
from fleet.watchdog import systemd, units
from fleet.watchdog.units import exec_arg, fleet_command, render_units, unit_names

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def xdg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private config dir, and a runtime dir with no user manager in it, so the real `systemctl --user`
    can never reach (let alone change) the user manager of whoever runs the tests."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "runtime"))
    monkeypatch.delenv("DBUS_SESSION_BUS_ADDRESS", raising=False)
    return tmp_path / "config" / "systemd" / "user"


@pytest.fixture
def config(tmp_path: Path) -> Path:
    """A config path with everything a unit file must escape: spaces, quotes, `%`, `$` and a backslash."""
    d = tmp_path / "my fleet's \"odd\" 100% $HOME\\dir"
    d.mkdir()
    path = d / "fleet.toml"
    path.write_text('[fleet]\nname = "demo"\n')
    return path


class FakeManager:
    """Stands in for a systemd user manager, which cannot run in this container; records every call."""

    def __init__(self, fail: str | None = None, show: str = "") -> None:
        self.calls: list[list[str]] = []
        self.fail = fail
        self.show = show

    def __call__(self, args: Sequence[str]) -> tuple[int, str]:
        self.calls.append(list(args))
        if self.fail and self.fail in args:
            return 1, f"Failed to {self.fail}: Access denied"
        if args[0] == "show" and len(args) > 1 and not args[1].startswith("--"):
            return 0, self.show
        return 0, "Version=252" if args[0] == "show" else ""


def systemd_words(line: str) -> list[str]:
    """Split an ExecStart=/Environment= value as systemd does for what `units` writes: whitespace
    outside double quotes, `\\\\` and `\\"` inside them, then `%%` and `$$` (ExecStart only)."""
    words, cur, quoted, i, started = [], [], False, 0, False
    while i < len(line):
        c = line[i]
        if quoted and c == "\\":
            cur.append(line[i + 1])
            i += 2
            continue
        if c == '"':
            quoted, started = not quoted, True
        elif c.isspace() and not quoted:
            if started:
                words.append("".join(cur))
            cur, started = [], False
        else:
            cur.append(c)
            started = True
        i += 1
    if started:
        words.append("".join(cur))
    return words


def unescape(word: str, *, dollars: bool) -> str:
    word = word.replace("%%", "%")
    return word.replace("$$", "$") if dollars else word


def directive(text: str, key: str) -> list[str]:
    return [line.split("=", 1)[1] for line in text.splitlines() if line.startswith(f"{key}=")]


def verify(*paths: Path) -> subprocess.CompletedProcess[str]:
    if shutil.which("systemd-analyze") is None:
        pytest.fail("systemd-analyze is missing: install the Debian package `systemd` to run this test.")
    return subprocess.run(["systemd-analyze", "verify", "--man=no", *map(str, paths)], capture_output=True,
                          text=True, timeout=60, check=False)


# -- rendering ----------------------------------------------------------------------------------------

def test_rendered_units_pass_systemd_analyze_verify_without_a_word(xdg: Path, config: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TMUX_TMPDIR", "/tmp/with space \"q\" 5%")
    result = systemd.install(fleet="demo", config=config, every=90)
    proc = verify(Path(result["service"]), Path(result["timer"]))
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")
    broken = xdg.parent / "broken"  # the same check does speak up about a bad unit
    broken.mkdir()
    bad = broken / "fleet-watchdog-demo.service"
    bad.write_text(Path(result["service"]).read_text().replace("Nice=10", "Nice=10\nPrivateTmp=maybe"))
    shutil.copy(result["timer"], broken)
    assert "Failed to parse boolean value" in verify(bad, broken / "fleet-watchdog-demo.timer").stderr


def test_exec_start_as_rendered_runs_this_fleet_with_the_config_path_intact(xdg: Path, config: Path) -> None:
    result = systemd.install(fleet="demo", config=config, every=60)
    service = Path(result["service"]).read_text()
    [line] = directive(service, "ExecStart")
    argv = [unescape(w, dollars=True) for w in systemd_words(line)]
    assert argv == [*fleet_command(), "--config", str(config), "watchdog", "tick"]
    assert Path(argv[0]).is_absolute()
    # `watchdog tick` is the lead's to wire; run everything before it to prove the command line works.
    proc = subprocess.run([*argv[:-2], "--help"], capture_output=True, text=True, timeout=60, check=False,
                          cwd="/")
    assert proc.returncode == 0, proc.stderr
    assert "Usage:" in proc.stdout


def test_the_units_carry_the_environment_the_tick_needs_and_the_period(xdg: Path, config: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TMUX_TMPDIR", "/tmp/a b")
    monkeypatch.setenv("FLEET_HOME", "/srv/fleet %h")
    monkeypatch.setenv("FLEET_HOLDER", "nobody-else")
    result = systemd.install(fleet="demo", config=config, every=45)
    service = Path(result["service"]).read_text()
    env = dict(unescape(systemd_words(v)[0], dollars=False).split("=", 1) for v in directive(service, "Environment"))
    assert env == {"PATH": os.environ["PATH"], "TMUX_TMPDIR": "/tmp/a b", "FLEET_HOME": "/srv/fleet %h",
                   "XDG_STATE_HOME": os.environ["XDG_STATE_HOME"]}
    timer = Path(result["timer"]).read_text()
    assert directive(timer, "OnUnitActiveSec") == ["45s"]
    assert directive(timer, "Unit") == ["fleet-watchdog-demo.service"]
    assert directive(service, "Type") == ["oneshot"]
    assert not directive(service, "PrivateTmp")
    assert not directive(service, "ProtectHome")


def test_every_hardening_line_says_why_it_is_safe() -> None:
    lines = (REPO / "systemd" / "fleet-watchdog.service").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("UMask="))
    hardening = [i for i, line in enumerate(lines[start:], start) if line and not line.startswith("#")]
    assert len(hardening) >= 7
    for i in hardening:
        above = lines[i - 1] if lines[i - 1].startswith("# Safe:") else lines[i - 2]
        assert above.startswith("# Safe:"), lines[i]


def test_two_fleets_get_their_own_units(xdg: Path, config: Path) -> None:
    a = systemd.install(fleet="alpha", config=config, every=60)
    b = systemd.install(fleet="beta", config=config, every=30)
    assert sorted(p.name for p in xdg.iterdir()) == [
        "fleet-watchdog-alpha.service", "fleet-watchdog-alpha.timer", "fleet-watchdog-beta.service",
        "fleet-watchdog-beta.timer"]
    assert "fleet-watchdog-beta.service" in Path(b["timer"]).read_text()
    assert "fleet-watchdog-alpha.service" in Path(a["timer"]).read_text()


@pytest.mark.parametrize("name", ["Demo", "a b", "-x", "", "a" * 33, "x/../y"])
def test_unit_names_only_come_from_valid_fleet_names(name: str) -> None:
    with pytest.raises(InvalidInput):
        unit_names(name)


def test_render_refuses_relative_paths_and_control_characters() -> None:
    with pytest.raises(InvalidInput, match="not absolute"):
        render_units(fleet="demo", config=Path("fleet.toml"), every=60, command=fleet_command())
    with pytest.raises(InvalidInput, match="absolute path"):
        render_units(fleet="demo", config=Path("/f.toml"), every=60, command=["fleet"])
    with pytest.raises(InvalidInput, match="control character"):
        render_units(fleet="demo", config=Path("/a\nb.toml"), every=60, command=fleet_command())


@settings(deadline=None)  # no wall-clock limits in tests: the machine is shared
@given(st.text(alphabet=st.characters(min_codepoint=32, blacklist_characters="\x7f"), max_size=40))
def test_any_printable_argument_survives_exec_start_quoting(arg: str) -> None:
    [word] = systemd_words(exec_arg(arg))
    assert unescape(word, dollars=True) == arg


def test_fleet_command_uses_the_script_beside_this_interpreter_or_falls_back_to_dash_m(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bindir = tmp_path / "venv" / "bin"
    bindir.mkdir(parents=True)
    python = bindir / "python"
    python.symlink_to(sys.executable)
    monkeypatch.setattr(sys, "executable", str(python))
    assert fleet_command() == (str(python), "-P", "-m", "fleet")  # no script
    script = bindir / "fleet"
    script.write_text(f"#!{bindir / 'python3'}\nimport fleet\n")
    script.chmod(0o755)
    assert fleet_command() == (str(script),)
    script.write_text("#!/usr/bin/python3\n")  # somebody else's fleet
    assert fleet_command() == (str(python), "-P", "-m", "fleet")


# -- install / uninstall / status ---------------------------------------------------------------------

def test_without_a_user_manager_the_files_are_written_and_the_commands_returned(xdg: Path, config: Path) -> None:
    assert shutil.which("systemctl"), "this test runs the real systemctl; install the Debian package `systemd`"
    result = systemd.install(fleet="demo", config=config, every=60)
    assert result["manager"] == "unavailable"
    assert result["written"] == [str(xdg / "fleet-watchdog-demo.service"), str(xdg / "fleet-watchdog-demo.timer")]
    assert result["commands"] == [f"loginctl enable-linger {getpass.getuser()}", "systemctl --user daemon-reload",
                                  "systemctl --user enable --now fleet-watchdog-demo.timer"]
    assert result["message"].startswith(f"Wrote 2 unit file(s) to {xdg}, but no systemd user manager answered (")
    assert "so the timer is not enabled" in result["message"]
    [probe] = result["ran"]
    assert probe["command"] == ["systemctl", "--user", "show", "--property=Version"]
    assert probe["returncode"] != 0
    for name in ("fleet-watchdog-demo.service", "fleet-watchdog-demo.timer"):
        assert units.MARKER in (xdg / name).read_text()


def test_install_is_idempotent_and_rewrites_only_what_changed(xdg: Path, config: Path) -> None:
    first = systemd.install(fleet="demo", config=config, every=60)
    before = {p.name: p.stat() for p in xdg.iterdir()}
    again = systemd.install(fleet="demo", config=config, every=60)
    assert again["written"] == []
    assert again["message"].startswith(f"The units in {xdg} are current")
    after = {p.name: p.stat() for p in xdg.iterdir()}
    assert {k: (v.st_ino, v.st_mtime_ns) for k, v in before.items()} == {
        k: (v.st_ino, v.st_mtime_ns) for k, v in after.items()}
    changed = systemd.install(fleet="demo", config=config, every=120)
    assert changed["written"] == [first["timer"]]
    assert "OnUnitActiveSec=120s" in Path(first["timer"]).read_text()


def test_with_a_user_manager_install_reloads_and_enables_the_timer(xdg: Path, config: Path) -> None:
    manager = FakeManager()
    result = systemd.install(fleet="demo", config=config, every=60, systemctl=manager)
    assert manager.calls == [["show", "--property=Version"], ["daemon-reload"],
                             ["enable", "--now", "fleet-watchdog-demo.timer"]]
    assert (result["manager"], result["commands"]) == ("enabled", [])
    assert result["message"] == (f"Wrote 2 unit file(s) to {xdg}; the user manager runs fleet-watchdog-demo.timer "
                                 "every 60s.")


def test_a_failing_enable_is_reported_with_its_output_and_what_is_left_to_run(xdg: Path, config: Path) -> None:
    result = systemd.install(fleet="demo", config=config, every=60, systemctl=FakeManager(fail="enable"))
    assert result["manager"] == "failed"
    assert result["commands"] == ["systemctl --user enable --now fleet-watchdog-demo.timer"]
    assert "`systemctl --user enable --now fleet-watchdog-demo.timer` failed: Failed to enable: Access denied" in (
        result["message"])


def test_units_fleet_did_not_write_are_never_overwritten_or_removed(xdg: Path, config: Path) -> None:
    xdg.mkdir(parents=True)
    mine = xdg / "fleet-watchdog-demo.timer"
    mine.write_text("[Timer]\nOnCalendar=daily\n")
    with pytest.raises(systemd.UnitConflict) as info:
        systemd.install(fleet="demo", config=config, every=60)
    assert info.value.code == "unit_conflict"
    assert not (xdg / "fleet-watchdog-demo.service").exists()  # refused before writing anything
    with pytest.raises(systemd.UnitConflict):
        systemd.uninstall(fleet="demo")
    assert mine.read_text() == "[Timer]\nOnCalendar=daily\n"


def test_uninstall_removes_the_units_and_the_enable_link_and_is_idempotent(xdg: Path, config: Path) -> None:
    installed = systemd.install(fleet="demo", config=config, every=60)
    wants = xdg / "timers.target.wants"
    wants.mkdir()
    (wants / "fleet-watchdog-demo.timer").symlink_to("../fleet-watchdog-demo.timer")  # what `enable` makes
    keep = xdg / "other.service"
    keep.write_text("[Service]\nExecStart=/bin/true\n")
    result = systemd.uninstall(fleet="demo")
    assert result["removed"] == [installed["service"], installed["timer"], str(wants / "fleet-watchdog-demo.timer")]
    assert result["manager"] == "unavailable"
    assert result["commands"] == ["systemctl --user stop fleet-watchdog-demo.timer", "systemctl --user daemon-reload"]
    assert sorted(p.name for p in xdg.iterdir()) == ["other.service", "timers.target.wants"]
    again = systemd.uninstall(fleet="demo")
    assert (again["removed"], again["commands"]) == ([], [])
    assert again["message"].startswith(f"No watchdog units for fleet demo were installed in {xdg}.")


def test_uninstall_with_a_user_manager_disables_the_timer_first(xdg: Path, config: Path) -> None:
    systemd.install(fleet="demo", config=config, every=60)
    manager = FakeManager()
    result = systemd.uninstall(fleet="demo", systemctl=manager)
    assert manager.calls == [["show", "--property=Version"], ["disable", "--now", "fleet-watchdog-demo.timer"],
                             ["daemon-reload"]]
    assert result["manager"] == "disabled"
    assert result["message"] == f"Removed 2 file(s) from {xdg}; the timer is disabled and stopped."
    failing = systemd.install(fleet="demo", config=config, every=60)
    refused = systemd.uninstall(fleet="demo", systemctl=FakeManager(fail="disable"))
    assert refused["manager"] == "failed"
    assert Path(failing["timer"]).exists()  # left in place so the enabled timer does not dangle


def test_status_reads_the_timer_from_the_user_manager(xdg: Path, config: Path) -> None:
    assert systemd.status(fleet="demo")["message"].startswith(
        "The watchdog units for fleet demo are not installed; no systemd user manager answered (")
    systemd.install(fleet="demo", config=config, every=60)
    offline = systemd.status(fleet="demo")
    assert (offline["installed"], offline["manager"], offline["timer"]) == (True, "unavailable", {})
    show = ("ActiveState=active\nSubState=waiting\nUnitFileState=enabled\nResult=success\n"
            "LastTriggerUSec=Sat 2026-11-21 08:00:00 UTC\nNextElapseUSecRealtime=Sat 2026-11-21 08:01:00 UTC\n")
    manager = FakeManager(show=show)
    result = systemd.status(fleet="demo", systemctl=manager)
    assert result["manager"] == "available"
    assert result["timer"]["SubState"] == "waiting"
    assert manager.calls[1] == ["show", "fleet-watchdog-demo.timer",
                                *(f"--property={p}" for p in systemd.TIMER_PROPERTIES)]
    assert result["message"] == (
        "The watchdog units for fleet demo are installed; fleet-watchdog-demo.timer is active (waiting), enabled; "
        "last tick Sat 2026-11-21 08:00:00 UTC ended success, next Sat 2026-11-21 08:01:00 UTC.")


# -- packaging ----------------------------------------------------------------------------------------

def test_the_templates_have_one_source_and_ship_in_the_wheel_as_real_files(tmp_path: Path) -> None:
    """Builds a wheel from a copy of the project (symlinks kept) without network or build isolation."""
    assert (REPO / "fleet" / "watchdog" / "unitfiles").resolve() == REPO / "systemd"
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src)
    for name in ("fleet", "systemd"):
        shutil.copytree(REPO / name, src / name, symlinks=True,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "--no-build-isolation",
                           "--no-index", "-q", "-w", str(tmp_path / "out")], cwd=src, capture_output=True,
                          text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    [wheel] = (tmp_path / "out").glob("fleet-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        for name in (units.SERVICE_TEMPLATE, units.TIMER_TEMPLATE):
            info = zf.getinfo(f"fleet/watchdog/unitfiles/{name}")
            assert not stat.S_ISLNK(info.external_attr >> 16)
            assert zf.read(info).decode() == (REPO / "systemd" / name).read_text()
        zf.extractall(tmp_path / "site")
    probe = ("import fleet, sys; from fleet.watchdog.units import template, SERVICE_TEMPLATE as S; "
             "print(fleet.__file__); sys.stdout.write(template(S))")
    ran = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True,
                         env={**os.environ, "PYTHONPATH": str(tmp_path / "site")}, cwd=tmp_path)
    where, _, text = ran.stdout.partition("\n")
    assert where.startswith(str(tmp_path / "site"))
    assert text == (REPO / "systemd" / units.SERVICE_TEMPLATE).read_text()


def env_file_pairs(text: str) -> dict[str, str]:
    """Read an environment file as systemd's `EnvironmentFile=` does for what `units` writes: `#` comment
    lines, `KEY="value"` where a backslash before `\\`, `"`, `` ` `` or `$` stands for that character."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        key, _, rest = line.partition("=")
        assert rest.startswith('"'), line
        assert rest.endswith('"'), line
        body, value, i = rest[1:-1], [], 0
        while i < len(body):
            if body[i] == "\\" and i + 1 < len(body) and body[i + 1] in '\\"`$':
                value.append(body[i + 1])
                i += 2
            else:
                assert body[i] not in '"', line  # an unescaped quote would end the value early
                value.append(body[i])
                i += 1
        out[key] = "".join(value)
    return out


STORE_URL = 'postgresql://fleet:p"a\\s$s`w%o rd@db.internal:5432/fleet'


def test_the_stores_credentials_go_to_a_private_environment_file_never_the_unit(
        xdg: Path, config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without them the tick would keep its own embedded store while the fleet uses the database."""
    monkeypatch.setenv("FLEET_STORE_URL", STORE_URL)
    monkeypatch.setenv("PGPASSWORD", "pg$pass")
    result = systemd.install(fleet="demo", config=config, every=60)
    env_file = xdg / "fleet-watchdog-demo.env"
    assert str(env_file) in result["written"]
    service = Path(result["service"]).read_text()
    assert 'p"a' not in service
    assert "pg$pass" not in service
    assert directive(service, "EnvironmentFile") == [str(env_file)]
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    assert env_file_pairs(env_file.read_text()) == {"FLEET_STORE_URL": STORE_URL, "PGPASSWORD": "pg$pass"}
    proc = verify(Path(result["service"]), Path(result["timer"]))
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")
    # installed again from a shell without them: the file goes, and the unit no longer names it
    monkeypatch.delenv("FLEET_STORE_URL")
    monkeypatch.delenv("PGPASSWORD")
    systemd.install(fleet="demo", config=config, every=60)
    assert not env_file.exists()
    assert directive(Path(result["service"]).read_text(), "EnvironmentFile") == []
    monkeypatch.setenv("PGPASSWORD", "again")
    systemd.install(fleet="demo", config=config, every=60)
    assert env_file.exists()
    assert str(env_file) in systemd.uninstall(fleet="demo")["removed"]
    assert not env_file.exists()


def test_a_credential_an_environment_file_cannot_carry_is_refused_unshown(
        xdg: Path, config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGPASSWORD", "secret\nline")
    with pytest.raises(InvalidInput) as refused:
        systemd.install(fleet="demo", config=config, every=60)
    assert "secret" not in refused.value.message + (refused.value.hint or "")
    assert not xdg.exists() or not any(xdg.iterdir())


def test_an_environment_file_fleet_did_not_write_is_never_replaced(xdg: Path, config: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    xdg.mkdir(parents=True)
    (xdg / "fleet-watchdog-demo.env").write_text("MINE=1\n")
    monkeypatch.setenv("PGPASSWORD", "x")
    with pytest.raises(systemd.UnitConflict):
        systemd.install(fleet="demo", config=config, every=60)
    assert (xdg / "fleet-watchdog-demo.env").read_text() == "MINE=1\n"
