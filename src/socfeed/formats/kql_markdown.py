"""KQL queries kept as Markdown pages or as plain ``.kql``, ``.txt`` and ``.csl`` files.

In Markdown, every fenced code block that contains KQL is a query. Fences marked kql or
kusto always count, and fences marked C#, sql or nothing count when their content reads
as KQL. The first heading is the title, and the page's prose gives the description,
ATT&CK tags and the other fields. In a plain file the leading ``//`` comments are the
description and the file name is the title. A block or file with several queries
separated by blank lines yields one rule each, titled "<title> (query N of M)". A query
is a hunting query unless a heading above it or the page itself calls it a detection
rule.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from socfeed.attack.ids import technique_ids_in_text
from socfeed.formats.base import Format, ParsedFile, RuleFile
from socfeed.kql.markdown import Block, Document, link_targets, parse_markdown, plain_text
from socfeed.kql.notes import describe_sources
from socfeed.kql.page_fields import (
    PageFields,
    is_detection_heading,
    read_page_fields,
    self_detection_reason,
)
from socfeed.kql.queries import QueryChunk, looks_like_kql, split_queries
from socfeed.kql.tables import read_query_sources
from socfeed.kql.tokens import comments
from socfeed.model import Rule, derive_rule_id

MARKDOWN_SUFFIXES = frozenset({".md", ".markdown"})
PLAIN_SUFFIXES = frozenset({".kql", ".txt", ".csl", ".kusto"})
KQL_FENCE_INFO = frozenset({"kql", "kusto", "csl"})
# Fence languages whose blocks are never KQL. Any other block is judged by its content.
OTHER_FENCE_INFO = frozenset(
    {"powershell", "ps", "ps1", "pwsh", "json", "yaml", "yml", "xml", "bash", "sh", "shell"}
    | {"cmd", "bat", "batch", "python", "py", "javascript", "js", "html", "csv", "ini", "console"}
)
_CONNECTOR_NOTE = re.compile(r"data connector required for this query\s*[-:]\s*(.+)", re.I)
_SEPARATOR = re.compile(r"^[\W_]*$")


@dataclass
class _Piece:
    """One query of a file, with what is known only about that query."""

    chunk: QueryChunk
    line: int  # 1-based line of the query in the file
    language_origin: str
    headings: list[str] = field(default_factory=list)
    local_text: str = ""
    detection_heading: str = ""
    warnings: list[str] = field(default_factory=list)


def parse(file: RuleFile) -> ParsedFile:
    """Parse a Markdown or plain KQL file into rules, or raise ParseError if it has no KQL."""
    if _is_markdown(file):
        document = parse_markdown(file.text)
        pieces = _markdown_pieces(document)
        first = pieces[0].line - 1 if pieces else len(document.lines)
        page = read_page_fields(document, first)
        title = document.title
    else:
        pieces = _plain_pieces(file.text)
        page = _plain_page(pieces)
        title = ""
    if not pieces:
        raise file.error(_no_kql_reason(file))
    rules = [
        _build_rule(file, page, title, piece, index, len(pieces))
        for index, piece in enumerate(pieces)
    ]
    return ParsedFile(rules=rules)


FORMAT = Format(name="kql-markdown", parse=parse)


def _is_markdown(file: RuleFile) -> bool:
    suffix = PurePosixPath(file.path).suffix.lower()
    if suffix in MARKDOWN_SUFFIXES:
        return True
    if suffix in PLAIN_SUFFIXES:
        return False
    # No known suffix: a page with headings or fences is Markdown, anything else plain KQL.
    return bool(re.search(r"^(#{1,6}\s|```|~~~)", file.text, re.MULTILINE))


def _no_kql_reason(file: RuleFile) -> str:
    name = PurePosixPath(file.path).name
    if not file.text.strip():
        return "no KQL query found: the file is empty"
    if file.text.lstrip().startswith(("{", "[")):
        return "no KQL query found: the file is JSON, not a query"
    targets = [t for t in link_targets(file.text) if t.lower().endswith((".md", ".kql"))]
    if name.lower().startswith("readme"):
        return "no KQL query found: this README contains no KQL code block"
    if targets and len(file.text) < 500:
        return f"no KQL query found: the page only points to {targets[0]}"
    return "no KQL query found: no code block or text in the file reads as KQL"


# -- finding the queries ---------------------------------------------------------------


def _markdown_pieces(document: Document) -> list[_Piece]:
    pieces: list[_Piece] = []
    previous_end = 0
    for block in document.blocks:
        if block.kind not in ("fence", "code") or not _contains_kql(block):
            continue
        origin = f"derived: a code block marked {block.info!r}" if block.info else ""
        origin = origin or "derived: the code block reads as KQL"
        headings = [h.text for h in document.headings_above(block.start)]
        headings = [h for h in headings if h != document.title]
        local = _prose_between(document, previous_end, block.start)
        detection = next((h for h in reversed(headings) if is_detection_heading(h)), "")
        offset = block.start + (1 if block.kind == "fence" else 0)
        for chunk in split_queries(block.text):
            piece = _Piece(chunk, offset + chunk.first_line, origin, headings, local, detection)
            pieces.append(piece)
        previous_end = block.end
    if not pieces:
        pieces = _unfenced_pieces(document)
    return pieces


def _contains_kql(block: Block) -> bool:
    info = block.info.split()[0].lower() if block.info.split() else ""
    if info in KQL_FENCE_INFO:
        return bool(block.text.strip())
    if info in OTHER_FENCE_INFO:
        return False
    return looks_like_kql(block.text)


def _prose_between(document: Document, start: int, end: int) -> str:
    blocks = [b for b in document.blocks if start <= b.start < end and b.kind == "paragraph"]
    return "\n\n".join(block.text.strip() for block in blocks)


def _unfenced_pieces(document: Document) -> list[_Piece]:
    """Read a query written as plain text under a heading such as "Query"."""
    for index, block in enumerate(document.blocks):
        if block.kind != "heading" or "query" not in block.text.lower():
            continue
        end = next(
            (b.start for b in document.blocks[index + 1 :] if b.kind == "heading"),
            len(document.lines),
        )
        body = document.lines[block.end : end]
        blank = next((i for i, line in enumerate(body) if line.strip()), len(body))
        first = block.end + blank
        text = "\n".join(document.lines[first:end])
        if not looks_like_kql(text):
            continue
        warning = (
            f"the query is not in a fenced code block; it was read from the text under the "
            f"heading {block.text!r}"
        )
        chunks = split_queries(text)
        return [
            _Piece(
                chunk,
                first + chunk.first_line,
                "derived: the text reads as KQL",
                warnings=[warning],
            )
            for chunk in chunks
        ]
    return []


def _plain_pieces(text: str) -> list[_Piece]:
    chunks = [
        chunk for chunk in split_queries(text) if looks_like_kql(chunk.text) or _has_source(chunk)
    ]
    return [_Piece(chunk, chunk.first_line, "derived: a plain KQL query file") for chunk in chunks]


def _has_source(chunk: QueryChunk) -> bool:
    return bool(read_query_sources(chunk.text).sources)


def _plain_page(pieces: list[_Piece]) -> PageFields:
    page = PageFields(markdown=False)
    if not pieces:
        return page
    header = _comment_lines(pieces[0].chunk.preceding_comments)
    page.description = "\n".join(header)
    if header:
        page.origins["description"] = "derived: the leading // comments of the file"
    page.detection_reason = self_detection_reason(page.description)
    for line in header:
        match = _CONNECTOR_NOTE.search(line)
        if match:
            page.fields["Data connector"] = match.group(1).strip()
    return page


def _comment_lines(lines: list[str]) -> list[str]:
    return [line for line in lines if not _SEPARATOR.match(line)]


# -- building rules --------------------------------------------------------------------


def _build_rule(
    file: RuleFile, page: PageFields, title: str, piece: _Piece, index: int, count: int
) -> Rule:
    rule = Rule(
        source=file.source,
        path=file.path,
        rule_id=derive_rule_id(file.source, file.path, index),
        format="kql-markdown",
        title="",
        language="kql",
        kind="hunting",
        query=piece.chunk.text,
        raw_text=file.text,
        author=page.author,
        created=page.created,
        modified=page.modified,
        references=list(page.references),
        false_positives=list(page.false_positives),
        warnings=page.warnings + piece.warnings,
        provenance=dict(page.origins),
        query_index=index,
        line=piece.line,
    )
    rule.provenance["rule_id"] = "derived: hashed from source, path and query index"
    rule.provenance["language"] = piece.language_origin
    _set_title(rule, title or PurePosixPath(file.path).stem, bool(title), index, count)
    _set_description(rule, page, piece, count)
    _set_kind(rule, page, piece)
    _set_attack(rule, page, piece)
    _set_data_sources(rule)
    _set_extra(rule, page, piece, count)
    return rule


def _set_title(rule: Rule, title: str, from_heading: bool, index: int, count: int) -> None:
    origin = "the first heading" if from_heading else "the file name"
    if count > 1:
        rule.title = f"{title} (query {index + 1} of {count})"
        rule.provenance["title"] = f"derived: {origin}, with the query's position in the file"
    else:
        rule.title = title
        rule.provenance["title"] = f"derived: {origin}"


def _set_description(rule: Rule, page: PageFields, piece: _Piece, count: int) -> None:
    parts = [page.description]
    own: list[str] = []
    if count > 1:
        # Text and comments written just above one query of several describe that query.
        own = piece.chunk.leading_comments
        if rule.query_index:
            own = _comment_lines(piece.chunk.preceding_comments) + own
            parts.append(piece.local_text)
    elif not page.description:
        own = piece.chunk.leading_comments
    parts.append("\n".join(_comment_lines(own)))
    description = "\n\n".join(part for part in dict.fromkeys(parts) if part)
    rule.description = description
    if description and description != page.description:
        above = "the comments or text above this query"
        both = f"the page description and {above}" if page.description else above
        rule.provenance["description"] = f"derived: {both}"


def _set_kind(rule: Rule, page: PageFields, piece: _Piece) -> None:
    if piece.detection_heading:
        rule.kind = "detection"
        rule.provenance["kind"] = (
            f"derived: the heading {piece.detection_heading!r} above the query"
        )
    elif page.detection_reason:
        rule.kind = "detection"
        rule.provenance["kind"] = page.detection_reason
    else:
        rule.provenance["kind"] = "inferred: nothing calls the query a detection rule; hunting"


def _set_attack(rule: Rule, page: PageFields, piece: _Piece) -> None:
    rule.tactics = list(page.tactics)
    own = technique_ids_in_text(
        "\n".join(comments(piece.chunk.text) + piece.chunk.preceding_comments)
    )
    if page.description and not page.techniques and not page.tactics:
        own = technique_ids_in_text(page.description) + own
    rule.techniques = list(dict.fromkeys(page.techniques + own))
    if [t for t in own if t not in page.techniques]:
        page_origin = rule.provenance.get("techniques")
        comment_origin = "ATT&CK ids in the query comments"
        rule.provenance["techniques"] = (
            f"{page_origin}, {comment_origin}" if page_origin else f"derived: {comment_origin}"
        )
    if page.unknown_tactics:
        rule.extra["unmapped_tactics"] = list(page.unknown_tactics)


def _set_data_sources(rule: Rule) -> None:
    sources = read_query_sources(rule.query)
    rule.data_sources = describe_sources(sources)
    if sources.externaldata_urls:
        rule.extra["externaldata_urls"] = sources.externaldata_urls
    if rule.data_sources:
        rule.provenance["data_sources"] = (
            "derived: tables read from the KQL query, with notes from the known-table list"
        )


def _set_extra(rule: Rule, page: PageFields, piece: _Piece, count: int) -> None:
    extra: dict[str, Any] = {}
    if page.fields:
        fields = page.fields.items()
        extra["fields"] = {k: plain_text(v) if page.markdown else v for k, v in fields}
    if page.sections:
        extra["sections"] = dict(page.sections)
    if piece.headings and count > 1:
        extra["section"] = " / ".join(piece.headings)
    rule.extra.update(extra)
