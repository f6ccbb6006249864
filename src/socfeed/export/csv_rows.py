"""CSV export: one row per rule, lists joined with "; "."""

from __future__ import annotations

import csv
from collections.abc import Iterable
from typing import TextIO

from socfeed.export.base import ExportContext, Exporter, clean_text
from socfeed.model import Rule

COLUMNS = (
    "key",
    "title",
    "source",
    "official",
    "language",
    "kind",
    "severity",
    "status",
    "tactics",
    "techniques",
    "tables",
    "tags",
    "created",
    "modified",
    "retrieved_at",
    "commit",
    "url",
)
LIST_SEPARATOR = "; "

# Spreadsheets evaluate a cell that starts with one of these as a formula, and rule text is
# untrusted. OWASP ASVS 5.0 (requirement 1.2.10) lists tab and NUL as well. NUL never gets
# here because clean_text replaces it, and carriage return is neutralized too.
_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def neutralize_formula(value: str) -> str:
    """Prefix an apostrophe to a cell that a spreadsheet would read as a formula."""
    return "'" + value if value.startswith(_FORMULA_PREFIXES) else value


def rule_row(rule: Rule) -> list[str]:
    """Return the CSV cells of one rule, in ``COLUMNS`` order, cleaned and neutralized."""
    values: list[str | list[str] | bool | None] = [
        rule.key,
        rule.title,
        rule.source,
        rule.official,
        rule.language,
        rule.kind,
        rule.severity,
        rule.status,
        rule.tactics,
        rule.techniques,
        rule.tables(),
        rule.tags,
        rule.created,
        rule.modified,
        rule.retrieved_at,
        rule.commit,
        rule.url,
    ]
    return [neutralize_formula(clean_text(_cell(value))) for value in values]


def _cell(value: str | list[str] | bool | None) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return LIST_SEPARATOR.join(value)
    return value


def write_csv(rules: Iterable[Rule], out: TextIO, context: ExportContext) -> int:
    """Write a header row and one row per rule, and return the number of rules.

    Rows end in CRLF as RFC 4180 has it, so a file stream must be opened with newline="".
    """
    writer = csv.writer(out)
    writer.writerow(COLUMNS)
    count = 0
    for rule in rules:
        writer.writerow(rule_row(rule))
        count += 1
    return count


EXPORTER = Exporter(name="csv", media_type="text/csv", extension="csv", write=write_csv)
