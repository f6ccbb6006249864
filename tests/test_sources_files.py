"""Tests for socfeed.sources.files: which files of a checkout are listed, and which skipped."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from socfeed.config import Source, load_settings
from socfeed.errors import SourceError
from socfeed.sources import iter_context_files, iter_rule_files, read_source_file

# The repository is checked out beside shared/, locally and in CI.
CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"

SOURCE = Source(
    name="team-rules",
    repo="example/team-rules",
    format="sigma",
    include=("rules/**/*.yml", "extra.yml"),
    exclude=("rules/drafts/**",),
    context=("macros/*.yml",),
)


def make_tree(root: Path, files: dict[str, str]) -> Path:
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return make_tree(
        tmp_path / "checkout",
        {
            "rules/b.yml": "title: B\n",
            "rules/a.yml": "title: A\n",
            "rules/win/c.yml": "title: C\n",
            "rules/drafts/d.yml": "title: D\n",
            "rules/notes.md": "# notes\n",
            "extra.yml": "title: E\n",
            "macros/m.yml": "name: m\n",
            ".git/rules/x.yml": "not a rule\n",
        },
    )


def test_rule_files_sorted_and_filtered(tree: Path) -> None:
    assert iter_rule_files(SOURCE, tree) == [
        "extra.yml",
        "rules/a.yml",
        "rules/b.yml",
        "rules/win/c.yml",
    ]


def test_context_files_listed(tree: Path) -> None:
    assert iter_context_files(SOURCE, tree) == ["macros/m.yml"]


def test_context_files_empty_without_globs(tree: Path) -> None:
    source = Source(name="s", repo="o/r", format="sigma", include=("**/*.yml",))
    assert iter_context_files(source, tree) == []


def test_git_folder_never_listed(tree: Path) -> None:
    source = Source(name="s", repo="o/r", format="sigma", include=(".git/**",))
    assert iter_rule_files(source, tree) == []


def test_names_with_spaces_and_unicode(tmp_path: Path) -> None:
    root = make_tree(tmp_path, {"Hunting Queries/Règle & co #1.yml": "x\n"})
    source = Source(name="s", repo="o/r", format="sigma", include=("**/*.yml",))
    assert iter_rule_files(source, root) == ["Hunting Queries/Règle & co #1.yml"]


def test_symlink_outside_root_skipped(
    tree: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    secret = tmp_path / "secret.yml"
    secret.write_text("password: x\n", encoding="utf-8")
    (tree / "rules" / "leak.yml").symlink_to(secret)
    with caplog.at_level(logging.WARNING, logger="socfeed.sources"):
        files = iter_rule_files(SOURCE, tree)
    assert "rules/leak.yml" not in files
    assert "skipped symlink source=team-rules path=rules/leak.yml" in caplog.text


def test_symlink_inside_root_skipped(tree: Path) -> None:
    (tree / "rules" / "alias.yml").symlink_to(tree / "rules" / "a.yml")
    assert "rules/alias.yml" not in iter_rule_files(SOURCE, tree)


def test_symlinked_folder_not_followed(
    tree: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    outside = make_tree(tmp_path / "outside", {"o.yml": "title: O\n"})
    (tree / "rules" / "linked").symlink_to(outside, target_is_directory=True)
    with caplog.at_level(logging.WARNING, logger="socfeed.sources"):
        files = iter_rule_files(SOURCE, tree)
    assert "rules/linked/o.yml" not in files
    assert "skipped symlinked folder source=team-rules path=rules/linked" in caplog.text


def test_root_given_through_symlink(tree: Path, tmp_path: Path) -> None:
    link = tmp_path / "link-to-checkout"
    link.symlink_to(tree, target_is_directory=True)
    assert iter_rule_files(SOURCE, link) == iter_rule_files(SOURCE, tree)


def test_large_file_skipped(tree: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tree / "rules" / "big.yml").write_bytes(b"x" * 101)
    with caplog.at_level(logging.WARNING, logger="socfeed.sources"):
        files = iter_rule_files(SOURCE, tree, max_bytes=100)
    assert "rules/big.yml" not in files
    assert "rules/a.yml" in files
    assert "skipped file larger than 100 bytes source=team-rules path=rules/big.yml" in caplog.text


def test_fifo_skipped(tree: Path) -> None:
    if not hasattr(os, "mkfifo"):
        pytest.skip("named pipes need a POSIX system")
    os.mkfifo(tree / "rules" / "pipe.yml")
    assert "rules/pipe.yml" not in iter_rule_files(SOURCE, tree)


def test_summary_logged(tree: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="socfeed.sources"):
        iter_rule_files(SOURCE, tree)
    assert "listed rule files source=team-rules" in caplog.text
    assert "files=4 skipped_symlinks=0" in caplog.text


def test_read_source_file(tree: Path) -> None:
    assert read_source_file(SOURCE, tree, "rules/a.yml") == b"title: A\n"


def test_read_source_file_rejects_symlink(tree: Path, tmp_path: Path) -> None:
    (tmp_path / "secret.yml").write_text("password: x\n", encoding="utf-8")
    (tree / "rules" / "leak.yml").symlink_to(tmp_path / "secret.yml")
    with pytest.raises(SourceError, match=r"team-rules:rules/leak\.yml"):
        read_source_file(SOURCE, tree, "rules/leak.yml")


def test_read_source_file_rejects_dot_dot(tree: Path) -> None:
    with pytest.raises(SourceError, match="resolves outside the source folder"):
        read_source_file(SOURCE, tree, "../outside.yml")


def test_read_source_file_rejects_large(tree: Path) -> None:
    with pytest.raises(SourceError, match="larger than 4 bytes"):
        read_source_file(SOURCE, tree, "rules/a.yml", max_bytes=4)


# For each corpus folder: the files that are not rules. Every other file outside the
# context globs must be listed as a rule file.
NOT_RULES: dict[str, Callable[[str], bool]] = {
    # Table schemas, the copy's own SOURCES.json, and a Defender custom detection that is
    # not in the Sentinel analytic rule schema.
    "azure-sentinel": lambda path: path.endswith(".json") or "/XDR Detections/" in path,
    "sigma": lambda path: False,
    # READMEs, index.md/index.yml and the docs/*.md generated from the hunting queries.
    "elastic-detection-rules": lambda path: path.startswith("hunting/") and "/queries/" not in path,
    "splunk-security-content": lambda path: False,
    "m365-hunting-queries": lambda path: (
        path
        in {
            "README.md",
            "00-query-submission-template.md",
            "M365-PowerBi Dashboard/readme.txt",
            "Protection events/README.md",
            "Webcasts/README.md",
            "Webcasts/TrackingTheAdversary/README.md",
        }
    ),
    # Folder READMEs and code_sample.md (an HTTP token request, not a query).
    "sentinel-queries-reprise99": lambda path: path.endswith(".md"),
    "falconfriday": lambda path: path == "README.md",
}
CONTEXT_FOLDERS = {"splunk-security-content": {"macros", "stories", "data_sources"}}


def corpus_files(root: Path) -> set[str]:
    return {path.relative_to(root).as_posix() for path in root.rglob("*") if path.is_file()}


@pytest.mark.corpus
@pytest.mark.parametrize("name", sorted(NOT_RULES))
def test_corpus_globs_find_rule_files(name: str) -> None:
    root = CORPUS / name
    if not root.is_dir():
        pytest.skip(f"corpus folder {root} not found")
    source = load_settings(environ={}).source(name)
    every_file = corpus_files(root)
    context_folders = CONTEXT_FOLDERS.get(name, set())
    expected_context = {path for path in every_file if path.split("/")[0] in context_folders}
    not_rules = {path for path in every_file if NOT_RULES[name](path)}
    expected_rules = every_file - expected_context - not_rules

    rules = iter_rule_files(source, root)
    context = iter_context_files(source, root)
    print(f"{name}: {len(rules)} rule, {len(context)} context, {len(not_rules)} skipped")

    assert set(rules) == expected_rules
    assert set(context) == expected_context
    assert len(rules) == len(set(rules))


@pytest.mark.corpus
@pytest.mark.parametrize(
    ("name", "path"),
    [
        ("m365-hunting-queries", "Discovery/PrevalentInteractiveLogons"),
        ("m365-hunting-queries", "Webcasts/Airlift 2021 - Lets Invoke.csl"),
        ("falconfriday", "0xFF-0508-Excessive_enumeration_of_policy_effective_permissions-AWS"),
        ("falconfriday", "hunts/Teams_RCE.md"),
        (
            "azure-sentinel",
            "Hunting Queries/Microsoft 365 Defender/Email and Collaboration Queries/Hunting/"
            "MDO_URLClickedinEmail.YAML",
        ),
        (
            "elastic-detection-rules",
            "rules_building_block/collection_archive_data_zip_imageload.toml",
        ),
        (
            "sigma",
            "rules-placeholder/windows/process_creation/"
            "proc_creation_win_userdomain_variable_enumeration.yml",
        ),
    ],
)
def test_corpus_odd_rule_files_listed(name: str, path: str) -> None:
    root = CORPUS / name
    if not root.is_dir():
        pytest.skip(f"corpus folder {root} not found")
    source = load_settings(environ={}).source(name)
    assert path in iter_rule_files(source, root)
