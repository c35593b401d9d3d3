"""The `[store]` table of fleet.toml: where shared state lives when it is not this host's files.

    [store]
    url = "postgresql://fleet@db.internal/fleet"   # or $FLEET_STORE_URL; none: the embedded default
    namespace = "shop"                              # optional: default the fleet's name
    connect_timeout = 5                             # optional: seconds, 1..60
    host = "build-1"                                # optional: this state dir's name among the hosts

Without a URL (no `url` key and no `$FLEET_STORE_URL`), fleet keeps its embedded store (lease files
under the state dir) and nothing here changes what it does. A URL in the file wins over the
variable, like `[fleet] state_dir` over `$FLEET_HOME`. Keep the password out of both if you can
(libpq's `~/.pgpass` or `$PGPASSWORD` supply it); wherever it is, fleet never prints it: every
message, log line and repr shows the URL through `mask_url`.

The namespace keys every row fleet writes, so fleets that share one database stay apart; hosts that
run one fleet together must use the same namespace (the same fleet name, or the same `namespace`).

`host` names this state dir among the namespace's writers: the watchdog's ticks and ladders
(`fleet.watchdog.pgstore`) and every shared audit record (`fleet.store.auditlog`) carry it, and
`fleet watchdog status` reads the ticks of its own name only. Without the key (`host_identity`) it is
the machine's hostname when the state dir is `<XDG state dir>/fleet/<namespace>` (the default state
dir of a fleet whose namespace is its name: a user has one such dir per namespace), and otherwise
`<hostname>:<first 8 hex digits of the SHA-256 of the state dir's real path>`, so two state dirs on
one machine (a second fleet, a test) never write under one name, and a state dir keeps its name
across restarts. Set `host` when that is not enough (two users of one machine, each with the default
state dir, in one namespace) or for a readable name; it must be unique in the namespace.
Pure: nothing here connects to anything.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit, urlunsplit

from fleet.errors import ConfigError
from fleet.vocab import STORE_URL_ENV

#: libpq's own names for a PostgreSQL connection URI; anything else is refused, not guessed at.
SCHEMES: Final = ("postgresql", "postgres")
#: Long enough for a URI with a few options; a longer one is a mistake, not a database.
MAX_URL: Final = 2048
#: How long a connection attempt may take before the store is `store_unavailable`: a CLI call must
#: not hang on a dead host for libpq's default of forever.
DEFAULT_CONNECT_TIMEOUT: Final = 5
NAMESPACE: Final = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
#: A host name is a label in `fleet watchdog status` and in every shared audit record, not a document.
MAX_HOST: Final = 64
_KEYS: Final = frozenset({"url", "namespace", "connect_timeout", "host"})


@dataclass(frozen=True)
class StoreSettings:
    """A PostgreSQL store: its URL (may hold a password: never print `url`, print `display`)."""

    url: str
    namespace: str
    connect_timeout: int = DEFAULT_CONNECT_TIMEOUT
    #: Where the URL came from, for `fleet store status` and error messages.
    source: str = "[store] url"
    #: This state dir's name among the namespace's hosts (`[store] host` or `host_identity`); None:
    #: the hostname (settings made in code, not parsed from a config).
    host: str | None = None

    @property
    def display(self) -> str:
        return mask_url(self.url)

    def __repr__(self) -> str:  # the dataclass repr would show the password
        return (f"StoreSettings(url={self.display!r}, namespace={self.namespace!r}, "
                f"connect_timeout={self.connect_timeout}, source={self.source!r}, host={self.host!r})")


def mask_url(url: str) -> str:
    """`url` with any password replaced by `***` (in the user info and in a `password=` option);
    a string that does not parse as a URL is shown only by its scheme, and one without `://` not at all."""
    if "://" not in url:
        return "(not a URL)"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 -- raises ValueError on a malformed port
    except ValueError:
        return f"{url.split(':', 1)[0][:20]}://(unparsable)"
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:***@{host}" if ":" in userinfo else f"{user}@{host}"
    query = re.sub(r"(?i)(^|&)(password=)[^&]*", r"\1\2***", parts.query)
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def host_identity(hostname: str, state_dir: str, default_dir: str) -> str:
    """The host name of a state dir with no `[store] host`: `hostname` for the default dir, else
    `hostname:` and 8 hex digits of the state dir's SHA-256 (both paths already made real by the caller)."""
    if state_dir == default_dir:
        return hostname
    import hashlib  # noqa: PLC0415 (only a store's host name needs it; `fleet status` must not load it)

    return f"{hostname}:{hashlib.sha256(state_dir.encode('utf-8', 'surrogateescape')).hexdigest()[:8]}"


def check_host(host: object, source: str) -> str:
    """`host` if it is a usable `[store] host`; a `ConfigError` naming `$.store.host` otherwise."""
    if (not isinstance(host, str) or not 1 <= len(host) <= MAX_HOST or not host.isprintable()
            or host != host.strip()):
        shown = repr(host)[:MAX_HOST + 10]
        raise _error(source, "$.store.host", f"{shown} is not a valid host name.",
                     f"Use 1-{MAX_HOST} printable characters with no control characters and no leading or trailing "
                     'space, unique among the hosts of the namespace (e.g. `host = "build-1"`), or leave the key out.')
    return host


def _default_host(state_dir: Path, state_root: Path, namespace: str) -> str:
    import socket  # noqa: PLC0415 (only a fleet with a store names its host)

    return host_identity(socket.gethostname(), os.path.realpath(state_dir), os.path.realpath(state_root / namespace))


def _error(source: str, key: str, message: str, hint: str) -> ConfigError:
    return ConfigError(f"{source}: {key}: {message}", hint=hint, path=source, key=key)


def check_url(url: object, source: str, key: str) -> str:
    """`url` if it is a PostgreSQL connection URI; a `ConfigError` naming `key` otherwise (its text
    shows the URL masked)."""
    hint = 'Use a PostgreSQL URI: `url = "postgresql://USER@HOST[:PORT]/DATABASE"` (see README, "Scaling out").'
    if not isinstance(url, str) or not url.strip():
        raise _error(source, key, "the store URL must be a non-empty string.", hint)
    # Every control character: Python's URL parser silently drops a tab (libpq keeps it), so a password
    # holding one would be scrubbed from messages as the wrong string.
    if len(url) > MAX_URL or any(ord(c) < 0x20 or ord(c) == 0x7F for c in url):
        raise _error(source, key, f"the store URL is longer than {MAX_URL} characters or has a control "
                                  "character.", hint)
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme not in SCHEMES:
        raise _error(source, key, f"the store URL {mask_url(url)} is not a postgresql:// URL.", hint)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise _error(source, key, f"the store URL {mask_url(url)} has a bad port.", hint) from None
    authority, _, path = url.split("://", 1)[1].partition("/")
    userinfo, at, host = authority.partition("@")
    if (at and (any(c in userinfo for c in "?#") or "@" in host)) or "@" in path.split("?", 1)[0]:
        # libpq ends the user info at the first `@` before a `/`, `?` and `#` included; Python's parser
        # (mask_url, secrets_of) at the last `@`, and the netloc at `?` or `#`. Where they differ, a
        # password would be shown and left unscrubbed: refuse (shown by its scheme only). An `@` after
        # the first `/` is a password with a `/` in it as often as a database name: refused too.
        raise _error(source, key, f"the store URL {url.split(':', 1)[0][:20]}://(not shown) has `?`, `#`, `/` or a "
                                  "second `@` in its user info.",
                     "Percent-encode those characters in the user name and password (`?` %3F, `#` %23, `/` %2F, "
                     "`@` %40), or give the password in $PGPASSWORD or ~/.pgpass instead of the URL.")
    if port == 0:
        raise _error(source, key, f"the store URL {mask_url(url)} has port 0.", hint)
    return url


def parse_store(tbl: object, *, source: str, fleet: str, state_dir: Path | None = None,
                state_root: Path | None = None,
                env: dict[str, str] | os._Environ[str] | None = None) -> StoreSettings | None:
    """The `[store]` table (None when absent) with `$FLEET_STORE_URL` as the URL's fallback;
    None when neither gives a URL (the embedded store). `state_dir` and `state_root` (the directory
    of default state dirs, `<XDG state dir>/fleet`) give the default `host`; without them it is None."""
    env = os.environ if env is None else env
    if tbl is None:
        tbl = {}
    if not isinstance(tbl, dict):
        raise _error(source, "$.store", "[store] must be a table.", "Write it as `[store]` with `url = ...`.")
    unknown = sorted(set(tbl) - _KEYS)
    if unknown:
        raise _error(source, f"$.store.{unknown[0]}", f"unknown key {unknown[0]!r}.",
                     "[store] takes url, namespace, connect_timeout and host.")
    settings: dict[str, Any] = {}
    if "url" in tbl:
        settings["url"] = check_url(tbl["url"], source, "$.store.url")
    elif env.get(STORE_URL_ENV):
        settings["url"] = check_url(env[STORE_URL_ENV], source, f"${STORE_URL_ENV}")
        settings["source"] = f"${STORE_URL_ENV}"
    namespace = tbl.get("namespace", fleet)
    if not isinstance(namespace, str) or not NAMESPACE.fullmatch(namespace):
        raise _error(source, "$.store.namespace", f"{namespace!r} is not a valid namespace.",
                     "Use 1-63 lowercase letters, digits, _ or -, starting with a letter or digit.")
    timeout = tbl.get("connect_timeout", DEFAULT_CONNECT_TIMEOUT)
    if isinstance(timeout, bool) or not isinstance(timeout, int) or not 1 <= timeout <= 60:
        raise _error(source, "$.store.connect_timeout", f"{timeout!r} is not a whole number of seconds "
                                                        "from 1 to 60.", "Set e.g. `connect_timeout = 5`.")
    if "host" in tbl:
        settings["host"] = check_host(tbl["host"], source)
    elif state_dir is not None and state_root is not None:
        settings["host"] = _default_host(state_dir, state_root, namespace)
    if "url" not in settings:
        if len(tbl) > 0:
            raise _error(source, "$.store.url", "[store] has no url (and $FLEET_STORE_URL is not set).",
                         "Add `url = \"postgresql://...\"`, set $FLEET_STORE_URL, or remove [store] to use the "
                         "embedded store.")
        return None
    return StoreSettings(namespace=namespace, connect_timeout=timeout, **settings)
