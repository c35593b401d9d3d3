"""`[store]` and `$FLEET_STORE_URL`: validated with errors naming the key, the password never shown."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fleet.config import parse_config
from fleet.config.store import check_host, host_identity, mask_url, parse_store
from fleet.errors import ConfigError

URL = "postgresql://fleet@db.internal:5432/fleet"


def agents(tmp_path: Path) -> dict[str, object]:
    return {"agents": {"a1": {"home": str(tmp_path / "h"), "cwd": str(tmp_path)}}}


def test_no_store_table_and_no_variable_keeps_the_embedded_store(tmp_path: Path) -> None:
    cfg = parse_config(agents(tmp_path), tmp_path / "fleet.toml")
    assert cfg.store is None


def test_a_store_url_is_read_with_the_fleet_name_as_namespace(tmp_path: Path) -> None:
    cfg = parse_config({"fleet": {"name": "shop"}, "store": {"url": URL}, **agents(tmp_path)}, tmp_path / "f.toml")
    assert cfg.store is not None
    assert cfg.store.url == URL
    assert cfg.store.namespace == "shop"
    assert cfg.store.source == "[store] url"


def test_the_variable_alone_gives_a_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLEET_STORE_URL", URL)
    cfg = parse_config(agents(tmp_path), tmp_path / "fleet.toml")
    assert cfg.store is not None
    assert cfg.store.source == "$FLEET_STORE_URL"
    assert cfg.store.namespace == "fleet"


def test_the_variable_is_the_fallback_and_the_file_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {"FLEET_STORE_URL": "postgres://other@h/db"}
    from_env = parse_store(None, source="f.toml", fleet="fleet", env=env)
    assert from_env is not None
    assert from_env.url == "postgres://other@h/db"
    assert from_env.source == "$FLEET_STORE_URL"
    from_file = parse_store({"url": URL, "namespace": "ns-1"}, source="f.toml", fleet="fleet", env=env)
    assert from_file is not None
    assert from_file.url == URL
    assert from_file.namespace == "ns-1"


@pytest.mark.parametrize(("tbl", "key"), [
    ({"url": "mysql://u:pw-x@h/db"}, "$.store.url"),
    ({"url": ""}, "$.store.url"),
    ({"url": 5}, "$.store.url"),
    ({"url": "postgresql://h:99999/db"}, "$.store.url"),
    ({"url": URL, "namespace": "Bad Name"}, "$.store.namespace"),
    ({"url": URL, "connect_timeout": 0}, "$.store.connect_timeout"),
    ({"url": URL, "connect_timeout": True}, "$.store.connect_timeout"),
    ({"url": URL, "pool": 3}, "$.store.pool"),
    ({"namespace": "ns"}, "$.store.url"),
])
def test_a_bad_store_table_is_a_config_error_naming_the_key(tbl: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError) as bad:
        parse_store(tbl, source="f.toml", fleet="fleet", env={})
    assert bad.value.data["key"] == key
    assert "pw-x" not in bad.value.message
    assert bad.value.hint


def test_a_bad_variable_is_named_as_the_variable() -> None:
    with pytest.raises(ConfigError) as bad:
        parse_store(None, source="f.toml", fleet="fleet", env={"FLEET_STORE_URL": "http://u:pw-y@h/"})
    assert bad.value.data["key"] == "$FLEET_STORE_URL"
    assert "pw-y" not in str(bad.value)


def test_the_settings_repr_and_display_hide_the_password() -> None:
    settings = parse_store({"url": "postgresql://fleet:pw-z@db/fleet?password=pw-q&sslmode=require"},
                           source="f.toml", fleet="fleet", env={})
    assert settings is not None
    for text in (repr(settings), settings.display, str(settings)):
        assert "pw-z" not in text
        assert "pw-q" not in text
    assert settings.display == "postgresql://fleet:***@db/fleet?password=***&sslmode=require"


_PASSWORD = st.text(alphabet=st.characters(codec="ascii", categories=["L", "N"]), min_size=1, max_size=30)
_NAME = st.from_regex(r"[a-z][a-z0-9]{0,10}", fullmatch=True)


@given(user=_NAME, password=_PASSWORD, host=_NAME, db=_NAME, in_query=st.booleans())
def test_mask_url_never_shows_the_password(user: str, password: str, host: str, db: str, in_query: bool) -> None:
    secret = f"PW{password}"  # a prefix that no other part of the URL can contain
    url = (f"postgresql://{user}@{host}/{db}?password={secret}" if in_query
           else f"postgresql://{user}:{secret}@{host}/{db}")
    masked = mask_url(url)
    assert secret not in masked
    assert masked.startswith(f"postgresql://{user}")
    assert host in masked


@given(st.text(max_size=200))
def test_mask_url_never_raises_and_never_echoes_text_after_the_scheme(text: str) -> None:
    masked = mask_url(text)
    assert isinstance(masked, str)
    if ":" in text and "@" in text.split("://", 1)[-1]:
        userinfo = text.split("://", 1)[-1].rsplit("@", 1)[0]
        if ":" in userinfo and len(userinfo.split(":", 1)[1]) > 3:
            assert f":{userinfo.split(':', 1)[1]}@" not in masked


@given(password=_PASSWORD, noise=st.text(max_size=40))
def test_a_driver_message_is_scrubbed_of_the_password(password: str, noise: str) -> None:
    from fleet.config.store import StoreSettings
    from fleet.store.db import Database

    secret = f"PW{password}"
    db = Database(StoreSettings(url=f"postgresql://u:{secret}@h/db?password={secret}x", namespace="ns"))
    message = db.scrub(RuntimeError(f"{noise} password={secret} and {secret}x failed"))
    assert secret not in message
    assert secret not in repr(db)


_ANY_PASSWORD = st.text(alphabet=st.characters(codec="ascii", categories=["L", "N", "P", "S"]), min_size=1,
                        max_size=30)


@given(password=_ANY_PASSWORD, host=_NAME)
def test_a_url_fleet_accepts_never_shows_the_password_libpq_would_use(password: str, host: str) -> None:
    """libpq ends the user info at the first `@` before a `/`, with `?` and `#` in it; Python's parser
    does not. Either the URL is refused (its text not shown) or masking and scrubbing see the same
    password libpq would send."""
    from fleet.config.store import StoreSettings, check_url
    from fleet.store.db import Database

    secret = f"PW{password}"
    url = f"postgresql://u:{secret}@{host}/db"
    refused: list[ConfigError] = []
    try:
        check_url(url, "fleet.toml", "$.store.url")
    except ConfigError as exc:
        refused.append(exc)
    if refused:
        assert secret not in str(refused[0].to_dict())
        return
    libpq_password = url.split("://", 1)[1].split("/", 1)[0].split("@", 1)[0].split(":", 1)[1]
    assert libpq_password not in mask_url(url)
    db = Database(StoreSettings(url=url, namespace="ns"))
    assert libpq_password not in db.scrub(RuntimeError(f"auth failed for {libpq_password}"))


def test_user_info_with_a_question_mark_or_hash_is_refused_unshown() -> None:
    for url in ("postgresql://u:123?x@h/db", "postgresql://u:2024#s3cret@h/db", "postgresql://u:a@b@h/db",
                "postgresql://u:s3cret/x@h/db"):
        with pytest.raises(ConfigError, match=r"not shown|unparsable") as refused:
            parse_store({"url": url}, source="fleet.toml", fleet="f")
        assert "s3cret" not in str(refused.value.to_dict())
        assert "123?x" not in str(refused.value.to_dict())
    for control in ("\t", "\x1b", "\x7f"):  # urllib drops a tab that libpq keeps: never scrubbed right
        with pytest.raises(ConfigError, match="control character") as refused:
            parse_store({"url": f"postgresql://u:ab{control}s3cret@h/db"}, source="f", fleet="f")
        assert "s3cret" not in str(refused.value.to_dict())
    assert parse_store({"url": "postgresql://u:p%3Fq@h/db?sslmode=require"}, source="f", fleet="f") is not None
    with pytest.raises(ConfigError, match="not shown"):  # a path with an `@`: a password with a `/` in it
        parse_store({"url": "postgresql://u@h/x@y"}, source="f", fleet="f")


# -- [store] host: this state dir's name among the namespace's hosts ---------------------------------


def test_a_configured_host_is_kept_as_written(tmp_path: Path) -> None:
    settings = parse_store({"url": URL, "host": "build-1 (rack 2)"}, source="f", fleet="f", state_dir=tmp_path,
                           state_root=tmp_path, env={})
    assert settings is not None
    assert settings.host == "build-1 (rack 2)"
    assert "build-1" in repr(settings)


@pytest.mark.parametrize("host", ["", " lead", "lead ", "a\tb", "a\nb", "a\x1bb", "a\x7fb", "a\u2028b", "x" * 65, 5,
                                  True, None, ["a"]])
def test_a_bad_host_is_a_config_error_with_a_hint(host: object) -> None:
    with pytest.raises(ConfigError) as bad:
        parse_store({"url": URL, "host": host}, source="f.toml", fleet="f", env={})
    assert bad.value.code == "config_invalid"
    assert bad.value.data["key"] == "$.store.host"
    assert "host =" in bad.value.hint
    assert "\n" not in bad.value.message


def test_the_default_state_dir_of_a_fleet_named_as_its_namespace_is_the_hostname(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("FLEET_HOME", raising=False)
    raw = {"fleet": {"name": "shop"}, "store": {"url": URL}, **agents(tmp_path)}
    cfg = parse_config(raw, tmp_path / "fleet.toml")
    assert cfg.state_dir == tmp_path / "xdg" / "fleet" / "shop"
    assert cfg.store is not None
    assert cfg.store.host == socket.gethostname()
    # the same default dir in another namespace is not the one dir per namespace: it gets a suffix
    other = parse_config({**raw, "store": {"url": URL, "namespace": "mall"}}, tmp_path / "fleet.toml")
    assert other.store is not None
    assert other.store.host is not None
    assert other.store.host.startswith(socket.gethostname() + ":")


def test_two_state_dirs_get_two_stable_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    names = []
    for where in ("a", "b", "a"):
        monkeypatch.setenv("FLEET_HOME", str(tmp_path / where))
        cfg = parse_config({"store": {"url": URL}, **agents(tmp_path)}, tmp_path / "fleet.toml")
        assert cfg.store is not None
        names.append(cfg.store.host)
    assert names[0] == names[2] != names[1]
    assert all(re.fullmatch(re.escape(socket.gethostname()) + r":[0-9a-f]{8}", str(n)) for n in names)
    # a configured name wins over the derived one
    cfg = parse_config({"store": {"url": URL, "host": "h-1"}, **agents(tmp_path)}, tmp_path / "fleet.toml")
    assert cfg.store is not None
    assert cfg.store.host == "h-1"


_PATH = st.lists(st.text(alphabet=st.characters(blacklist_characters="/\x00", blacklist_categories=["Cs"]),
                         min_size=1, max_size=12), min_size=1, max_size=4).map(lambda p: "/" + "/".join(p))


@given(hostname=_NAME, state_dir=_PATH, default_dir=_PATH, other=_PATH)
def test_host_identity_is_the_hostname_only_for_the_default_dir(hostname: str, state_dir: str, default_dir: str,
                                                                other: str) -> None:
    name = host_identity(hostname, state_dir, default_dir)
    assert name == host_identity(hostname, state_dir, default_dir)  # stable
    assert host_identity(hostname, default_dir, default_dir) == hostname
    if state_dir != default_dir:
        assert re.fullmatch(re.escape(hostname) + r":[0-9a-f]{8}", name)
        if other not in (state_dir, default_dir):  # two dirs, two names (8 hex digits: collisions aside)
            assert host_identity(hostname, other, default_dir) != name or _same_prefix(state_dir, other)
    check_host(host_identity(hostname, state_dir, default_dir), "f")  # what fleet derives it would accept


def _same_prefix(a: str, b: str) -> bool:
    import hashlib

    return hashlib.sha256(a.encode()).hexdigest()[:8] == hashlib.sha256(b.encode()).hexdigest()[:8]
