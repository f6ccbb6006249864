"""Tests of socfeed update: Git sources made in the test, local folders, sample fallback."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import FIXTURES
from socfeed.config import Settings, load_settings
from socfeed.enrich import Enricher
from socfeed.store import FeedQuery, Store
from socfeed.update import update_sources

PHISH = (
    "Hunting Queries/Microsoft 365 Defender/Email and Collaboration Queries/Quarantine/"
    "High Confidence Phish Released.yaml"
)


def git(*args: str, cwd: Path) -> str:
    completed = subprocess.run(
        ["git", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
        text=True,
        env={
            "GIT_AUTHOR_NAME": "t",
            "GIT_AUTHOR_EMAIL": "t@example.invalid",
            "GIT_COMMITTER_NAME": "t",
            "GIT_COMMITTER_EMAIL": "t@example.invalid",
            "HOME": str(cwd),
            "PATH": "/usr/bin:/bin",
        },
    )
    return completed.stdout.strip()


def make_upstream(tmp_path: Path) -> Path:
    """Create a Git repository shaped like Azure-Sentinel with one real hunting query."""
    upstream = tmp_path / "upstream"
    target = upstream / PHISH
    target.parent.mkdir(parents=True)
    shutil.copy(FIXTURES / "azure-sentinel" / PHISH, target)
    git("init", "-q", "-b", "main", cwd=upstream)
    git("add", "-A", cwd=upstream)
    git("commit", "-q", "-m", "first", cwd=upstream)
    return upstream


def sentinel_settings(tmp_path: Path, url: str) -> Settings:
    settings = load_settings(environ={"SOCFEED_CACHE": str(tmp_path / "cache")})
    sources = tuple(
        dataclasses.replace(s, url=url) if s.name == "azure-sentinel" else s
        for s in settings.sources
    )
    return dataclasses.replace(settings, sources=sources)


def test_clone_then_pull_new_commit(tmp_path: Path, store: Store) -> None:
    upstream = make_upstream(tmp_path)
    settings = sentinel_settings(tmp_path, upstream.as_uri())

    first = update_sources(settings, store, names=["azure-sentinel"], enricher=Enricher())

    assert first[0].mode == "clone"
    head = git("rev-parse", "HEAD", cwd=upstream)
    assert store.sources()[0].commit == head
    rule = store.feed(FeedQuery()).rules[0]
    assert rule.url.endswith(
        "/blob/" + head + "/Hunting%20Queries/Microsoft%20365%20Defender/"
        "Email%20and%20Collaboration%20Queries/Quarantine/High%20Confidence%20Phish%20Released.yaml"
    )

    second_file = upstream / "Detections" / "Extra" / "copy.yaml"
    second_file.parent.mkdir(parents=True)
    text = (upstream / PHISH).read_text(encoding="utf-8")
    second_file.write_text(
        text.replace("id: ", "id: 0000", 1).replace("name: ", "name: Copy of ", 1),
        encoding="utf-8",
    )
    git("add", "-A", cwd=upstream)
    git("commit", "-q", "-m", "second", cwd=upstream)

    again = update_sources(settings, store, names=["azure-sentinel"], enricher=Enricher())

    assert again[0].mode == "pull"
    assert store.sources()[0].commit == git("rev-parse", "HEAD", cwd=upstream)
    assert store.feed(FeedQuery()).total == 2


def test_unreachable_source_falls_back_to_sample(tmp_path: Path, store: Store) -> None:
    settings = sentinel_settings(tmp_path, (tmp_path / "missing").as_uri())

    outcome = update_sources(settings, store, names=["azure-sentinel"])[0]

    assert outcome.mode == "sample"
    assert "sample" in outcome.note
    record = store.sources()[0]
    assert record.is_sample
    assert record.rules > 0


def test_unreachable_source_keeps_stored_rules(tmp_path: Path, store: Store) -> None:
    upstream = make_upstream(tmp_path)
    good = sentinel_settings(tmp_path, upstream.as_uri())
    update_sources(good, store, names=["azure-sentinel"])
    shutil.rmtree(tmp_path / "cache")
    broken = sentinel_settings(tmp_path, (tmp_path / "missing").as_uri())

    outcome = update_sources(broken, store, names=["azure-sentinel"])[0]

    assert outcome.mode == "kept"
    assert outcome.report is None
    assert store.sources()[0].is_sample is False
    assert store.feed(FeedQuery()).total == 1


def test_local_folder_without_git(tmp_path: Path, store: Store) -> None:
    folder = tmp_path / "plain"
    shutil.copytree(FIXTURES / "azure-sentinel", folder)

    outcome = update_sources(
        load_settings(environ={}), store, names=["azure-sentinel"], path=folder
    )[0]

    assert outcome.mode == "local"
    record = store.sources()[0]
    assert record.commit is None
    assert record.files_seen == record.files_with_rules + record.files_failed
    assert record.rules >= 1


def test_path_needs_exactly_one_source(tmp_path: Path, store: Store) -> None:
    from socfeed.errors import SourceError

    with pytest.raises(SourceError, match="exactly one source"):
        update_sources(load_settings(environ={}), store, path=tmp_path)


def test_empty_folder_keeps_stored_rules(tmp_path: Path, store: Store) -> None:
    settings = load_settings(environ={})
    update_sources(settings, store, names=["azure-sentinel"], path=FIXTURES / "azure-sentinel")
    stored = store.feed(FeedQuery()).total
    empty = tmp_path / "empty"
    empty.mkdir()

    outcome = update_sources(settings, store, names=["azure-sentinel"], path=empty)[0]

    assert outcome.mode == "kept"
    assert "no rule files found" in outcome.note
    assert store.feed(FeedQuery()).total == stored
