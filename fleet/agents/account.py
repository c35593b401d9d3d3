"""Which account an agent's Codex runs on: agents on one account share its usage limits.

An agent's account is, in order: `[agents.x] account = "name"` from fleet.toml; else a short hash
of the ChatGPT account id Codex keeps in the agent's `$CODEX_HOME/auth.json` (`auth:` and 12 hex
digits of its sha256: the id itself and every token stay in the file); else None (unknown).

Reading auth.json is defensive although the agent's home is the user's, not the agent's: the file
is opened without following a symlink and without blocking (a FIFO is no file), only a regular file
is read, at most `MAX_AUTH_BYTES` of it (a bigger one is not Codex's), and anything missing,
garbled or unexpected gives None, never an error. Nothing read here is logged or returned except
the hash.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any, Final

from fleet.config import AgentSpec
from fleet.fsutil import read_regular

#: Codex's auth.json is a few KB (three JWTs); anything bigger is not one.
MAX_AUTH_BYTES: Final = 64 * 1024
#: Hex digits of the account id's sha256 shown: enough to tell a fleet's few accounts apart.
HASH_DIGITS: Final = 12
#: The namespace of OpenAI's claims in the id token.
AUTH_CLAIM: Final = "https://api.openai.com/auth"
AUTH_FILE: Final = "auth.json"


def account_of(spec: AgentSpec) -> str | None:
    """The agent's account identity: configured, else hashed from its auth.json, else None."""
    if spec.account is not None:
        return spec.account
    data = read_regular(spec.home / AUTH_FILE, MAX_AUTH_BYTES)
    return account_from_auth(data) if data is not None else None


def account_from_auth(data: bytes) -> str | None:
    """`auth:<12 hex>` for the account id in Codex's auth.json content: `tokens.account_id`, else the
    `chatgpt_account_id` claim of `tokens.id_token`; None when there is none (an API key login, a
    garbled file)."""
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError):
        return None
    tokens = doc.get("tokens") if isinstance(doc, dict) else None
    if not isinstance(tokens, dict):
        return None
    account = tokens.get("account_id")
    if not _usable(account):
        account = _claimed_account(tokens.get("id_token"))
    if not _usable(account):
        return None
    import hashlib  # noqa: PLC0415 (~3 ms: only when an auth.json names an account, never for a plain status)

    return "auth:" + hashlib.sha256(str(account).encode("utf-8", "surrogatepass")).hexdigest()[:HASH_DIGITS]


def _usable(value: Any) -> bool:
    return isinstance(value, str) and 0 < len(value) <= 256


def _claimed_account(token: Any) -> str | None:
    """The `chatgpt_account_id` claim of a JWT's payload (the signature is not checked: this names an
    account for grouping, it grants nothing)."""
    if not isinstance(token, str) or token.count(".") != 2 or len(token) > MAX_AUTH_BYTES:
        return None
    payload = token.split(".")[1]
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (ValueError, binascii.Error, RecursionError):
        return None
    auth = claims.get(AUTH_CLAIM) if isinstance(claims, dict) else None
    account = auth.get("chatgpt_account_id") if isinstance(auth, dict) else None
    return account if isinstance(account, str) else None
