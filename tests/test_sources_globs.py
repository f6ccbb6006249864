"""Tests for socfeed.sources.globs: which relative paths each glob pattern matches."""

from __future__ import annotations

import pytest

from socfeed.sources.globs import compile_glob, matches_any

CASES = [
    # (pattern, path, matches)
    ("rules/**/*.yml", "rules/a.yml", True),
    ("rules/**/*.yml", "rules/windows/process/a.yml", True),
    ("rules/**/*.yml", "rules/a.yaml", False),
    ("rules/**/*.yml", "other/rules/a.yml", False),
    ("rules*/**/*.yml", "rules-threat-hunting/windows/a.yml", True),
    ("rules*/**/*.yml", "regression_data/rules/a.yml", False),
    ("**/*.md", "README.md", True),
    ("**/*.md", "a/b/c.md", True),
    ("**/*.md", ".github/ISSUE_TEMPLATE/bug.md", False),
    ("**/*.md", "docs/.hidden.md", False),
    (".github/*.md", ".github/bug.md", True),
    ("*.kql", "folder/a.kql", False),
    ("*.kql", "a.kql", True),
    ("Solutions/*/Analytic Rules/**/*.yaml", "Solutions/Microsoft 365/Analytic Rules/x.yaml", True),
    ("Solutions/*/Analytic Rules/**/*.yaml", "Solutions/A/B/Analytic Rules/x.yaml", False),
    ("Detections/**/*.yaml", "Detections/x.YAML", False),
    ("hunting/**/queries/*.toml", "hunting/windows/queries/q.toml", True),
    ("hunting/**/queries/*.toml", "hunting/windows/docs/q.toml", False),
    ("hunting/**/queries/*.toml", "hunting/queries/q.toml", True),
    ("docs/**", "docs/a/b.md", True),
    ("docs/**", "docs", False),
    ("0xFF-*", "0xFF-0508-Excessive-AWS", True),
    ("file?.txt", "file1.txt", True),
    ("file?.txt", "file10.txt", False),
    ("[!R]*.md", "README.md", False),
    ("[!R]*.md", "guide.md", True),
    ("[a-c]x.md", "bx.md", True),
    ("[]]x", "]x", True),
    ("a+b (1).md", "a+b (1).md", True),
    ("a+b (1).md", "aab (1).md", False),
]


@pytest.mark.parametrize(("pattern", "path", "expected"), CASES)
def test_glob_matches(pattern: str, path: str, expected: bool) -> None:
    assert bool(compile_glob(pattern).fullmatch(path)) is expected


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("", "empty glob pattern"),
        ("/rules/*.yml", "relative to the repository root"),
        ("rules\\*.yml", "relative to the repository root"),
        ("rules/../*.yml", "'..' segments are not allowed"),
        ("rules//a.yml", "empty, '.' and '..' segments"),
        ("rules/[ab.yml", "'[' without a closing ']'"),
    ],
)
def test_glob_invalid(pattern: str, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("(", r"\(")):
        compile_glob(pattern)


def test_matches_any_some_pattern() -> None:
    assert matches_any("a/b.txt", ("*.md", "**/*.txt"))


def test_matches_any_no_pattern() -> None:
    assert not matches_any("a/b.txt", ())
