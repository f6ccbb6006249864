"""Tests for socfeed.sources.links: links to original files on GitHub."""

from __future__ import annotations

import pytest

from socfeed.config import Source
from socfeed.sources import original_url

SENTINEL = Source(name="azure-sentinel", repo="Azure/Azure-Sentinel", format="sentinel", include=())
PHISH_PATH = (
    "Hunting Queries/Microsoft 365 Defender/Email and Collaboration Queries/Quarantine/"
    "High Confidence Phish Released.yaml"
)


def test_link_encodes_spaces() -> None:
    url = original_url(SENTINEL, "1c5a7399584ab3992e47950cc9e01e7f05ee13b5", PHISH_PATH)
    assert url == (
        "https://github.com/Azure/Azure-Sentinel/blob/1c5a7399584ab3992e47950cc9e01e7f05ee13b5/"
        "Hunting%20Queries/Microsoft%20365%20Defender/Email%20and%20Collaboration%20Queries/"
        "Quarantine/High%20Confidence%20Phish%20Released.yaml"
    )


@pytest.mark.parametrize(
    ("path", "encoded"),
    [
        ("a&b/c.md", "a%26b/c.md"),
        ("C#/x.md", "C%23/x.md"),
        ("100%/x.md", "100%25/x.md"),
        ("Sécurité/règle.md", "S%C3%A9curit%C3%A9/r%C3%A8gle.md"),
        ("a?b/x.md", "a%3Fb/x.md"),
        ("APT29 thinktanks (0).yaml", "APT29%20thinktanks%20%280%29.yaml"),
        ("a+b.md", "a%2Bb.md"),
    ],
)
def test_link_encodes_special_characters(path: str, encoded: str) -> None:
    url = original_url(SENTINEL, "main", path)
    assert url == f"https://github.com/Azure/Azure-Sentinel/blob/main/{encoded}"


def test_link_without_ref_uses_head() -> None:
    url = original_url(SENTINEL, None, "a.yaml")
    assert url == "https://github.com/Azure/Azure-Sentinel/blob/HEAD/a.yaml"


def test_link_without_ref_uses_source_ref() -> None:
    source = Source(name="s", repo="o/r", format="sigma", include=(), ref="release/2.0")
    assert original_url(source, None, "a.yml") == "https://github.com/o/r/blob/release/2.0/a.yml"


@pytest.mark.parametrize("path", ["/etc/passwd", "a/../b.yml", "a//b.yml", ""])
def test_link_rejects_invalid_path(path: str) -> None:
    with pytest.raises(ValueError, match="expected a path relative to the root"):
        original_url(SENTINEL, "main", path)
