"""Tests for socfeed.sources.sample and the sample rules shipped in the package."""

from __future__ import annotations

from pathlib import Path

import pytest

from socfeed.config import Source, load_settings
from socfeed.sources import iter_context_files, iter_rule_files, sample_checkout, sample_root
from socfeed.sources.sample import SAMPLE_DIR

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"
SAMPLED = [
    "azure-sentinel",
    "sigma",
    "elastic-detection-rules",
    "splunk-security-content",
    "m365-hunting-queries",
    "sentinel-queries-reprise99",
    "falconfriday",
]


def default_source(name: str) -> Source:
    return load_settings(environ={}).source(name)


@pytest.mark.parametrize("name", SAMPLED)
def test_sample_root_exists(name: str) -> None:
    root = sample_root(name)
    assert root == SAMPLE_DIR / name


def test_sample_root_none_for_bertjanp() -> None:
    assert sample_root("bertjanp") is None


@pytest.mark.parametrize("name", ["../sample", "", "Sigma", "a/b"])
def test_sample_root_rejects_invalid_name(name: str) -> None:
    assert sample_root(name) is None


@pytest.mark.parametrize("name", SAMPLED)
def test_sample_has_five_to_twelve_rules(name: str) -> None:
    rules = iter_rule_files(default_source(name), SAMPLE_DIR / name)
    assert 5 <= len(rules) <= 12


@pytest.mark.parametrize("name", SAMPLED)
def test_sample_note_not_a_rule(name: str) -> None:
    assert "SAMPLE.md" not in iter_rule_files(default_source(name), SAMPLE_DIR / name)


@pytest.mark.parametrize("name", SAMPLED)
def test_sample_note_names_repo_and_licence(name: str) -> None:
    source = default_source(name)
    note = (SAMPLE_DIR / name / "SAMPLE.md").read_text(encoding="utf-8")
    assert f"https://github.com/{source.repo}" in note
    assert f"- Licence: {source.licence}" in note


@pytest.mark.parametrize("name", SAMPLED)
def test_sample_files_all_listed(name: str) -> None:
    source = default_source(name)
    root = SAMPLE_DIR / name
    listed = set(iter_rule_files(source, root)) | set(iter_context_files(source, root))
    on_disk = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}
    assert listed == on_disk - {"SAMPLE.md"}


def test_sample_total_size_under_one_megabyte() -> None:
    total = sum(path.stat().st_size for path in SAMPLE_DIR.rglob("*") if path.is_file())
    assert total < 1_000_000


def test_sample_has_quarantine_phish_query() -> None:
    path = (
        "Hunting Queries/Microsoft 365 Defender/Email and Collaboration Queries/Quarantine/"
        "High Confidence Phish Released.yaml"
    )
    assert path in iter_rule_files(default_source("azure-sentinel"), SAMPLE_DIR / "azure-sentinel")


def test_sample_splunk_context_present() -> None:
    root = SAMPLE_DIR / "splunk-security-content"
    context = iter_context_files(default_source("splunk-security-content"), root)
    folders = {path.split("/")[0] for path in context}
    assert folders == {"macros", "stories", "data_sources"}


def test_sample_elastic_rule_types() -> None:
    root = SAMPLE_DIR / "elastic-detection-rules"
    texts = [
        (root / path).read_text(encoding="utf-8")
        for path in iter_rule_files(default_source("elastic-detection-rules"), root)
    ]
    for rule_type in ("query", "eql", "esql", "machine_learning"):
        assert any(f'type = "{rule_type}"' in text for text in texts), rule_type


def test_sample_checkout_commit_from_note() -> None:
    checkout = sample_checkout(default_source("sigma"))
    assert checkout is not None
    assert checkout.commit == "8eaafff1f2845a696050e05e72ba1140ee190698"
    assert checkout.mode == "sample"
    assert checkout.is_sample is True
    assert checkout.root == SAMPLE_DIR / "sigma"


def test_sample_checkout_mixed_commits() -> None:
    checkout = sample_checkout(default_source("azure-sentinel"))
    assert checkout is not None
    assert checkout.commit is None


def test_sample_checkout_none_without_sample() -> None:
    assert sample_checkout(default_source("bertjanp")) is None


@pytest.mark.corpus
@pytest.mark.parametrize("name", SAMPLED)
def test_sample_files_equal_corpus(name: str) -> None:
    if not (CORPUS / name).is_dir():
        pytest.skip(f"corpus folder {CORPUS / name} not found")
    root = SAMPLE_DIR / name
    for path in root.rglob("*"):
        if path.is_file() and path.name != "SAMPLE.md":
            relative = path.relative_to(root)
            assert path.read_bytes() == (CORPUS / name / relative).read_bytes(), relative
