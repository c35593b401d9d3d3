"""An agent's account identity: configured, else a short hash of the account id in its Codex home's
auth.json (never a token), else unknown; a missing, garbled, symlinked, odd or huge file is unknown."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fleet.agents.account import MAX_AUTH_BYTES, account_from_auth, account_of
from fleet.config import AgentSpec
from fleet.fsutil import read_regular

SECRET = "eyJhbGciOiJub25lIn0.c2VjcmV0.sig-SECRET-TOKEN"


def spec(home: Path, account: str | None = None) -> AgentSpec:
    return AgentSpec(name="a", home=home, cwd=home, role="worker", sandbox="workspace-write", codex="codex",
                     account=account)


def jwt(claims: dict[str, Any]) -> str:
    part = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    return f"eyJhbGciOiJub25lIn0.{part}.sig"


def hashed(account: str) -> str:
    return "auth:" + hashlib.sha256(account.encode()).hexdigest()[:12]


def auth(tokens: Any) -> bytes:
    return json.dumps({"auth_mode": "chatgpt", "OPENAI_API_KEY": None, "tokens": tokens,
                       "last_refresh": "2026-12-01T00:00:00Z"}).encode()


def test_the_account_id_is_hashed_and_no_token_comes_back() -> None:
    data = auth({"id_token": SECRET, "access_token": SECRET, "refresh_token": SECRET, "account_id": "acct-123"})
    got = account_from_auth(data)
    assert got == hashed("acct-123")
    assert "acct-123" not in str(got)
    assert "SECRET" not in str(got)


def test_without_account_id_the_id_tokens_claim_names_the_account() -> None:
    token = jwt({"https://api.openai.com/auth": {"chatgpt_account_id": "acct-9"}, "email": "x@example.invalid"})
    assert account_from_auth(auth({"id_token": token})) == hashed("acct-9")


@pytest.mark.parametrize("data", [
    b"", b"not json", b"[]", b"null", json.dumps({"OPENAI_API_KEY": "sk-test"}).encode(),  # an API key login
    auth(None), auth({"account_id": ""}), auth({"account_id": 7}), auth({"id_token": "a.b"}),
    auth({"id_token": "a.!!!.c"}), auth({"id_token": jwt({"sub": "x"})}), auth({"account_id": "x" * 300}),
    b"[" * 100_000,
])
def test_anything_without_a_usable_account_id_is_unknown(data: bytes) -> None:
    assert account_from_auth(data) is None


@given(st.binary(max_size=400) | st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(
        ["tokens", "account_id", "id_token", "x"]), inner, max_size=4), max_leaves=12).map(
    lambda v: json.dumps(v).encode()))
def test_any_content_gives_a_short_hash_or_unknown_and_never_raises(data: bytes) -> None:
    got = account_from_auth(data)
    assert got is None or (got.startswith("auth:") and len(got) == 17)


def test_a_configured_account_wins_over_auth_json(tmp_path: Path) -> None:
    (tmp_path / "auth.json").write_bytes(auth({"account_id": "acct-1"}))
    assert account_of(spec(tmp_path, "team-a")) == "team-a"
    assert account_of(spec(tmp_path)) == hashed("acct-1")
    assert account_of(spec(tmp_path / "nowhere")) is None


def test_a_symlinked_fifo_or_huge_auth_json_is_unknown(tmp_path: Path) -> None:
    real = tmp_path / "real.json"
    real.write_bytes(auth({"account_id": "acct-1"}))
    home = tmp_path / "codex-home"
    home.mkdir()
    (home / "auth.json").symlink_to(real)
    assert account_of(spec(home)) is None
    (home / "auth.json").unlink()
    os.mkfifo(home / "auth.json")  # opened without blocking, and refused: not a regular file
    assert account_of(spec(home)) is None
    (home / "auth.json").unlink()
    (home / "auth.json").write_bytes(auth({"account_id": "acct-1", "pad": "x" * MAX_AUTH_BYTES}))
    assert account_of(spec(home)) is None
    (home / "auth.json").unlink()
    (home / "auth.json").mkdir()
    assert account_of(spec(home)) is None


def test_a_bounded_read_returns_a_file_of_exactly_the_limit_and_refuses_one_byte_more(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"x" * 100)
    assert read_regular(path, 100) == b"x" * 100
    assert read_regular(path, 99) is None
