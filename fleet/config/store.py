"""The `[store]` table of fleet.toml: where shared state lives when it is not this host's files.

    [store]
    url = "postgresql://fleet@db.internal/fleet"   # or $FLEET_STORE_URL; none: the embedded default
    namespace = "shop"                              # optional: default the fleet's name
    connect_timeout = 5                             # optional: seconds, 1..60

Without a URL (no `url` key and no `$FLEET_STORE_URL`), fleet keeps its embedded store (lease files
under the state dir) and nothing here changes what it does. A URL in the file wins over the
variable, like `[fleet] state_dir` over `$FLEET_HOME`. Keep the password out of both if you can
(libpq's `~/.pgpass` or `$PGPASSWORD` supply it); wherever it is, fleet never prints it: every
message, log line and repr shows the URL through `mask_url`.

The namespace keys every row fleet writes, so fleets that share one database stay apart; hosts that
run one fleet together must use the same namespace (the same fleet name, or the same `namespace`).
Pure: nothing here connects to anything.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit, urlunsplit

from fleet.errors import ConfigError

#: The variable read when the config has no `[store] url`.
STORE_URL_ENV: Final = "FLEET_STORE_URL"
#: Variables that can carry the store's credentials: `STORE_URL_ENV` and libpq's password. An agent's
#: environment never has them (`fleet.agents.codex.launch_command`); a lead's fleet server gets them
#: by name from its Codex, and its own shell commands do not (`fleet.agents.lead`).
STORE_SECRET_ENV: Final = (STORE_URL_ENV, "PGPASSWORD")
#: libpq's own names for a PostgreSQL connection URI; anything else is refused, not guessed at.
SCHEMES: Final = ("postgresql", "postgres")
#: Long enough for a URI with a few options; a longer one is a mistake, not a database.
MAX_URL: Final = 2048
#: How long a connection attempt may take before the store is `store_unavailable`: a CLI call must
#: not hang on a dead host for libpq's default of forever.
DEFAULT_CONNECT_TIMEOUT: Final = 5
NAMESPACE: Final = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_KEYS: Final = frozenset({"url", "namespace", "connect_timeout"})


@dataclass(frozen=True)
class StoreSettings:
    """A PostgreSQL store: its URL (may hold a password: never print `url`, print `display`)."""

    url: str
    namespace: str
    connect_timeout: int = DEFAULT_CONNECT_TIMEOUT
    #: Where the URL came from, for `fleet store status` and error messages.
    source: str = "[store] url"

    @property
    def display(self) -> str:
        return mask_url(self.url)

    def __repr__(self) -> str:  # the dataclass repr would show the password
        return (f"StoreSettings(url={self.display!r}, namespace={self.namespace!r}, "
                f"connect_timeout={self.connect_timeout}, source={self.source!r})")


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


def parse_store(tbl: object, *, source: str, fleet: str,
                env: dict[str, str] | os._Environ[str] | None = None) -> StoreSettings | None:
    """The `[store]` table (None when absent) with `$FLEET_STORE_URL` as the URL's fallback;
    None when neither gives a URL (the embedded store)."""
    env = os.environ if env is None else env
    if tbl is None:
        tbl = {}
    if not isinstance(tbl, dict):
        raise _error(source, "$.store", "[store] must be a table.", "Write it as `[store]` with `url = ...`.")
    unknown = sorted(set(tbl) - _KEYS)
    if unknown:
        raise _error(source, f"$.store.{unknown[0]}", f"unknown key {unknown[0]!r}.",
                     "[store] takes url, namespace and connect_timeout.")
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
    if "url" not in settings:
        if len(tbl) > 0:
            raise _error(source, "$.store.url", "[store] has no url (and $FLEET_STORE_URL is not set).",
                         "Add `url = \"postgresql://...\"`, set $FLEET_STORE_URL, or remove [store] to use the "
                         "embedded store.")
        return None
    return StoreSettings(namespace=namespace, connect_timeout=timeout, **settings)
