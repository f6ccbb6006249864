"""JSON Lines export: one rule per line, as ``Rule.to_dict()``."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import TextIO

from socfeed.export.base import ExportContext, Exporter
from socfeed.model import Rule


def rule_line(rule: Rule) -> str:
    """Return one rule as a line of JSON, non-ASCII text kept readable."""
    data = rule.to_dict()
    line = json.dumps(data, ensure_ascii=False, default=str)
    try:
        line.encode("utf-8")
    except UnicodeEncodeError:
        # A lone surrogate in the rule text cannot be written as UTF-8, but JSON can carry
        # it as a \u escape.
        line = json.dumps(data, ensure_ascii=True, default=str)
    return line + "\n"


def write_jsonl(rules: Iterable[Rule], out: TextIO, context: ExportContext) -> int:
    """Write one JSON object per line and return the number of rules."""
    count = 0
    for rule in rules:
        out.write(rule_line(rule))
        count += 1
    return count


EXPORTER = Exporter(
    name="jsonl", media_type="application/x-ndjson", extension="jsonl", write=write_jsonl
)
