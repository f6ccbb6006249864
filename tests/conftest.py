"""Shared test fixtures: the real corpora beside the checkout and a fresh store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from socfeed.store import Store, open_store

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"
# The corpora lie in ../shared/corpus beside the checkout, locally and in CI.
CORPUS = REPO.parent / "shared" / "corpus"


@pytest.fixture
def corpus() -> Path:
    """Return the real corpora folder, skipping the test when it is absent."""
    if not CORPUS.is_dir():
        pytest.skip(f"real corpora not found at {CORPUS}")
    return CORPUS


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """Return an empty store in a SQLite file of its own."""
    opened = open_store(tmp_path / "socfeed.db")
    yield opened
    opened.close()
