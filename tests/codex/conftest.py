"""Tests that start the real Codex CLI live here, and only here: this folder's items carry the `codex`
marker, and the fixtures that hand out Codex (`codex_bin`, `model_catalog`, `mock_model`) exist only
here. `pytest -m "not codex"` is therefore a run that starts no Codex; tests/conftest.py refuses a
`codex` marker or a `require_offline()` call anywhere else.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import CODEX_DEFAULT, require_offline
from mockmodel import MockModel, MockServer
from offlinecodex import apply_patch_catalog


def pytest_itemcollected(item: pytest.Item) -> None:
    item.add_marker(pytest.mark.codex)


@pytest.fixture(scope="session")
def codex_bin() -> str:
    path = os.environ.get("FLEET_TEST_CODEX") or str(CODEX_DEFAULT)
    if not os.access(path, os.X_OK):
        pytest.fail(f"The pinned Codex CLI is not installed at {path}: run `scripts/setup` first.")
    return path


@pytest.fixture(scope="session")
def model_catalog(tmp_path_factory: pytest.TempPathFactory, codex_bin: str) -> Path:
    """A model catalog giving `mock-model` the metadata of a built-in model (from `codex debug models`):
    Codex offers apply_patch only to models whose metadata says so, and an unknown slug gets none."""
    require_offline()
    return apply_patch_catalog(codex_bin, tmp_path_factory.mktemp("catalog") / "catalog.json")


@pytest.fixture
def mock_model() -> Iterator[MockServer]:
    with MockServer(MockModel(default_text="Done.")) as server:
        yield server
