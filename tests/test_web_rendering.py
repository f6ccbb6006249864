"""Tests of the shared page helpers: links, URL checks, highlighting."""

from __future__ import annotations

import pytest

from socfeed.web.rendering import (
    attack_tactic_url,
    attack_technique_url,
    file_lexer_name,
    highlight_code,
    highlight_css,
    language_label,
    query_lexer_name,
    rule_path,
    safe_href,
)


@pytest.mark.parametrize(
    ("key", "path"),
    [
        ("sigma:5f1c2a3b-0000", "/rules/sigma:5f1c2a3b-0000"),
        ("sigma:abc~1a2b3c4d", "/rules/sigma:abc~1a2b3c4d"),
        ("x:a/b", "/rules/x:a%2Fb"),
        ("x:a?b#c", "/rules/x:a%3Fb%23c"),
        ("x:100% done", "/rules/x:100%25%20done"),
        ("x:ключ", "/rules/x:%D0%BA%D0%BB%D1%8E%D1%87"),
    ],
)
def test_rule_path_encoding(key: str, path: str) -> None:
    assert rule_path(key) == path


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        " JavaScript:alert(1)",
        "data:text/html,<script>alert(1)</script>",
        "vbscript:msgbox(1)",
        "//example.org/x",
        "/relative/path",
        "https://",
        "http://[broken",
        "",
        None,
    ],
)
def test_safe_href_rejects(url: str | None) -> None:
    assert safe_href(url) is None


def test_safe_href_accepts_http_urls() -> None:
    assert safe_href("https://example.org/a?b=1#c") == "https://example.org/a?b=1#c"
    assert safe_href(" http://example.org ") == "http://example.org"


def test_highlight_escapes_markup() -> None:
    html = str(highlight_code("<script>alert(1)</script> & <b>", "text"))

    assert "<script>" not in html
    assert "<b>" not in html
    assert "&lt;script&gt;" in html
    assert "&amp;" in html


def test_highlight_escapes_in_every_lexer() -> None:
    for lexer in ("kusto", "yaml", "sql", "toml", "markdown", "text"):
        html = str(highlight_code("x = '<img src=x onerror=alert(1)>'", lexer))
        assert "<img" not in html, lexer


def test_highlight_keeps_leading_blank_lines() -> None:
    html = str(highlight_code("\n\nSecurityEvent", "kusto"))

    assert "<code>\n\n" in html


@pytest.mark.parametrize(
    ("language", "lexer"),
    [("kql", "kusto"), ("sigma", "yaml"), ("esql", "sql"), ("spl", "text"), ("eql", "text")],
)
def test_query_lexer_names(language: str, lexer: str) -> None:
    assert query_lexer_name(language) == lexer


@pytest.mark.parametrize(
    ("path", "lexer"),
    [
        ("rules/a.yml", "yaml"),
        ("Detections/A.YAML", "yaml"),
        ("rules/a.toml", "toml"),
        ("x/README.md", "markdown"),
        ("q.kql", "kusto"),
        ("q.csl", "kusto"),
        ("q.txt", "text"),
        ("no-extension", "text"),
    ],
)
def test_file_lexer_names(path: str, lexer: str) -> None:
    assert file_lexer_name(path) == lexer


def test_highlight_css_scoped() -> None:
    css = highlight_css()

    assert "@media (prefers-color-scheme: dark)" in css
    rules = [line for line in css.splitlines() if line and not line.startswith(("@", "}"))]
    assert all(line.startswith(".highlight") for line in rules)


def test_language_labels() -> None:
    assert language_label("esql") == "ES|QL"
    assert language_label("kql") == "KQL"
    assert language_label("yara-l") == "yara-l"
    assert language_label("") == "no language"


def test_attack_urls() -> None:
    assert attack_technique_url("T1059.001") == "https://attack.mitre.org/techniques/T1059/001/"
    assert attack_technique_url("T1078") == "https://attack.mitre.org/techniques/T1078/"
    assert attack_tactic_url("Defense Evasion") == "https://attack.mitre.org/tactics/TA0005/"
    assert attack_tactic_url("Not a tactic") is None
