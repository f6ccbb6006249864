"""Tests of the helpers every parser shares: YAML loading, decoding, dates."""

from __future__ import annotations

import pytest

from conftest import FIXTURES
from socfeed.errors import ParseError
from socfeed.formats.base import RuleFile, decode_rule_bytes, iso_date, load_yaml_documents


def test_alias_bomb_rejected_with_location() -> None:
    text = (FIXTURES / "bad" / "sigma_alias_bomb.yml").read_text(encoding="utf-8")

    with pytest.raises(ParseError, match="alias bomb") as caught:
        load_yaml_documents(RuleFile("sigma", "bomb.yml", text))

    assert caught.value.location is not None
    assert caught.value.location.line == 1


def test_shared_aliases_below_limit_load() -> None:
    text = "a: &x [1, 2, 3]\nb: *x\nc: *x\n"

    documents = load_yaml_documents(RuleFile("sigma", "ok.yml", text))

    assert documents == [({"a": [1, 2, 3], "b": [1, 2, 3], "c": [1, 2, 3]}, 1)]


def test_trailing_empty_document_dropped() -> None:
    documents = load_yaml_documents(RuleFile("sigma", "x.yml", "title: a\n---\n"))

    assert [document for document, _ in documents] == [{"title": "a"}]


def test_tab_error_names_line_and_column() -> None:
    with pytest.raises(ParseError, match="replace tabs with spaces") as caught:
        load_yaml_documents(RuleFile("s", "t.yaml", "a:\n  -\tT1212\n"))

    assert caught.value.location is not None
    assert (caught.value.location.line, caught.value.location.column) == (2, 4)


def test_invalid_utf8_reports_line() -> None:
    with pytest.raises(ParseError, match="invalid UTF-8") as caught:
        decode_rule_bytes(b"title: ok\nname: \xff\n", "s", "bad.yml")

    assert caught.value.location is not None
    assert caught.value.location.line == 2


def test_byte_order_mark_dropped() -> None:
    assert decode_rule_bytes("\ufefftitle: x".encode(), "s", "bom.yml") == "title: x"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2023-03-14", "2023-03-14"),
        ("2023/3/5", "2023-03-05"),
        ("03/14/2023", "2023-03-14"),
        ("14.03.2023", "2023-03-14"),
        ("2023-03-14T10:00:00Z", "2023-03-14"),
    ],
)
def test_iso_date_unambiguous(value: str, expected: str) -> None:
    assert iso_date(value) == (expected, None)


@pytest.mark.parametrize("value", ["03/04/2023", "2023/13/01", "someday"])
def test_iso_date_rejected_with_warning(value: str) -> None:
    date, warning = iso_date(value)

    assert date is None
    assert warning is not None
    assert value in warning


@pytest.mark.parametrize(
    "text",
    ["title: x\nloop: &loop [*loop]\n", "title: x\ndescription: &d {self: *d}\n"],
)
def test_recursive_alias_rejected(text: str) -> None:
    with pytest.raises(ParseError, match="recursive alias"):
        load_yaml_documents(RuleFile("sigma", "recursive.yml", text))
