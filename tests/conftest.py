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


@pytest.fixture(scope="session")
def corpus_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    """Return a store holding every source of the real corpora, ingested once per run."""
    if not CORPUS.is_dir():
        pytest.skip(f"real corpora not found at {CORPUS}")
    from socfeed.config import load_settings
    from socfeed.enrich import Enricher
    from socfeed.enrich.crosslinks import refresh_links
    from socfeed.update import update_sources

    folder = tmp_path_factory.mktemp("corpus-store")
    settings = load_settings(environ={"SOCFEED_MIRROR": str(CORPUS)})
    opened = open_store(folder / "socfeed.db")
    update_sources(settings, opened, enricher=Enricher())
    refresh_links(opened)
    yield opened
    opened.close()
