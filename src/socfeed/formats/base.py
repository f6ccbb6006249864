"""The input and output types of every format parser, and the helpers they share."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from socfeed.errors import Location, ParseError
from socfeed.model import Rule

try:
    _YamlLoader: type[yaml.SafeLoader] = yaml.CSafeLoader  # type: ignore[assignment]
except AttributeError:  # PyYAML built without libyaml
    _YamlLoader = yaml.SafeLoader


@dataclass
class RuleFile:
    """One file of a source, decoded, with the per-source context its format prepared."""

    source: str
    path: str  # POSIX path relative to the source root
    text: str
    context: Mapping[str, Any] = field(default_factory=dict)

    def location(self, line: int | None = None, column: int | None = None) -> Location:
        return Location(self.source, self.path, line, column)

    def error(self, reason: str, line: int | None = None, column: int | None = None) -> ParseError:
        """Build a parse error located in this file."""
        return ParseError(reason, self.location(line, column))


@dataclass
class ParsedFile:
    """The rules a file yielded and the errors that kept parts of it from yielding rules."""

    rules: list[Rule] = field(default_factory=list)
    errors: list[ParseError] = field(default_factory=list)


@dataclass(frozen=True)
class Format:
    """A registered rule format: a parser and an optional per-source context loader."""

    name: str
    parse: Callable[[RuleFile], ParsedFile]
    # Reads files that are context, not rules (Splunk stories, macros, data sources) once
    # per source, before any rule file is parsed.
    load_context: Callable[[Path], Mapping[str, Any]] | None = None


def decode_rule_bytes(data: bytes, source: str, path: str) -> str:
    """Decode a rule file as UTF-8, dropping a byte-order mark; raise a located error if invalid."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ParseError(
            f"invalid UTF-8 at byte {exc.start}; save the file as UTF-8",
            Location(source, path, line),
        ) from exc


def load_yaml_documents(file: RuleFile) -> list[tuple[Any, int]]:
    """Parse every YAML document of a file with the C loader; return (document, first line).

    Empty documents (a trailing ``---``) are dropped. A YAML error becomes a ParseError with
    the line and column that PyYAML reports.
    """
    documents: list[tuple[Any, int]] = []
    try:
        loader = _YamlLoader(file.text)
        try:
            while loader.check_node():
                node = loader.get_node()
                if node is None:
                    continue
                line = node.start_mark.line + 1
                if expanded_size(node) > MAX_EXPANDED_NODES:
                    raise file.error(
                        f"YAML aliases expand to more than {MAX_EXPANDED_NODES} values "
                        "(an alias bomb or a recursive alias); the file is not read",
                        line,
                    )
                document = loader.construct_document(node)
                if document is not None:
                    documents.append((document, line))
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        raise yaml_error(file, exc) from exc
    except yaml.YAMLError as exc:
        raise file.error(f"invalid YAML: {exc}") from exc
    return documents


# Rule files are small: the largest in the corpora has a few thousand YAML values. Aliases
# share nodes, so a tiny file can describe billions of values ("billion laughs"), which
# later steps (pySigma, JSON) would expand.
MAX_EXPANDED_NODES = 200_000


def expanded_size(root: yaml.Node) -> int:
    """Return how many values a YAML node graph contains once every alias is expanded.

    A recursive alias (``a: &a [*a]``) expands without end, so it returns more than
    MAX_EXPANDED_NODES.
    """
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        if id(node) in sizes:
            continue
        children = _children(node)
        if not children_done:
            if any(id(child) in open_nodes for child in children):
                return MAX_EXPANDED_NODES + 1
            open_nodes.add(id(node))
            stack.append((node, True))
            stack.extend((child, False) for child in children if id(child) not in sizes)
            continue
        open_nodes.discard(id(node))
        total = 1 + sum(sizes.get(id(child), 1) for child in children)
        sizes[id(node)] = min(total, MAX_EXPANDED_NODES + 1)
    return sizes[id(root)]


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def yaml_error(file: RuleFile, exc: yaml.MarkedYAMLError) -> ParseError:
    """Turn a PyYAML error into a ParseError with its line, column and a plain reason."""
    mark = exc.problem_mark or exc.context_mark
    reason = " ".join(part for part in (exc.context, exc.problem) if part) or "invalid YAML"
    if mark is not None and _char_at(file.text, mark.line, mark.column) == "\t":
        reason += " (a tab character); replace tabs with spaces"
    line = mark.line + 1 if mark is not None else None
    column = mark.column + 1 if mark is not None else None
    return file.error(f"invalid YAML: {reason}", line, column)


def _char_at(text: str, line: int, column: int) -> str:
    lines = text.splitlines()
    if line < len(lines) and column < len(lines[line]):
        return lines[line][column]
    return ""


_SLASH_YMD = re.compile(r"^(\d{4})[/.](\d{1,2})[/.](\d{1,2})$")
_SLASH_AMBIGUOUS = re.compile(r"^(\d{1,2})[/.](\d{1,2})[/.](\d{4})$")


def iso_date(value: Any) -> tuple[str | None, str | None]:
    """Normalize a date value to ``YYYY-MM-DD``; return (date, warning).

    Accepts date and datetime objects (YAML turns ``2023-03-14`` into one), ISO strings with
    or without a time, ``YYYY/M/D``, and ``D/M/YYYY`` or ``M/D/YYYY`` only where just one
    reading is a valid date. Anything else gives None and a warning naming the value.
    """
    if value is None or value == "":
        return None, None
    if isinstance(value, dt.datetime):
        return value.date().isoformat(), None
    if isinstance(value, dt.date):
        return value.isoformat(), None
    text = str(value).strip()
    try:
        return dt.date.fromisoformat(text[:10]).isoformat(), None
    except ValueError:
        pass
    match = _SLASH_YMD.match(text)
    if match:
        year, month, day = (int(g) for g in match.groups())
        return _checked_date(year, month, day, text)
    match = _SLASH_AMBIGUOUS.match(text)
    if match:
        first, second, year = (int(g) for g in match.groups())
        readings = {
            d for d in (_valid_date(year, first, second), _valid_date(year, second, first)) if d
        }
        if len(readings) == 1:
            return readings.pop().isoformat(), None
        if readings:
            return None, f"date {text!r} is ambiguous (day/month or month/day); left empty"
    return None, f"date {text!r} is not a recognized date; left empty"


def _valid_date(year: int, month: int, day: int) -> dt.date | None:
    try:
        return dt.date(year, month, day)
    except ValueError:
        return None


def _checked_date(year: int, month: int, day: int, text: str) -> tuple[str | None, str | None]:
    date = _valid_date(year, month, day)
    if date is None:
        return None, f"date {text!r} is not a valid date; left empty"
    return date.isoformat(), None


def as_text(value: Any) -> str:
    """Return a scalar as stripped text; None becomes an empty string."""
    if value is None:
        return ""
    return str(value).strip()


def as_text_list(value: Any) -> list[str]:
    """Return a scalar or list as a list of non-empty stripped strings."""
    if value is None:
        return []
    items = value if isinstance(value, list | tuple) else [value]
    return [str(item).strip() for item in items if item is not None and str(item).strip()]
