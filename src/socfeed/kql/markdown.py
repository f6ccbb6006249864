"""The parts of a Markdown query page that rule parsing needs, read with markdown-it-py.

Headings, fenced and indented code, tables, prose blocks and ``**Key:** value`` fields,
each with its line range, so a query can be matched to the headings and text above it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from markdown_it import MarkdownIt
from markdown_it.token import Token as MarkdownToken

_FIELD = re.compile(r"^\s*\*\*\s*([^*:\n]{1,40}?)\s*:\s*\*\*\s*:?\s*(.*?)\s*$", re.MULTILINE)
_LINK = re.compile(r"!?\[([^\]]*)\]\(([^)\s]*)[^)]*\)")
_EMPHASIS = re.compile(r"(\*\*|__|\*|`)")


@dataclass
class Block:
    """A top-level Markdown block, or a code block at any depth, with 0-based line range."""

    kind: str  # "heading", "paragraph", "list", "quote", "table", "fence", "code", "html", "rule"
    start: int
    end: int  # exclusive
    text: str  # plain heading text, code content, or the block's source lines
    level: int = 0  # heading level
    info: str = ""  # fence info string, such as "kql" or "C#"
    rows: list[list[str]] = field(default_factory=list)  # table cells as written, header first


@dataclass
class Document:
    """A parsed Markdown page."""

    lines: list[str]
    blocks: list[Block]

    @property
    def title(self) -> str:
        """The text of the first heading, or an empty string."""
        for block in self.blocks:
            if block.kind == "heading" and block.text:
                return block.text
        return ""

    def headings_above(self, line: int) -> list[Block]:
        """Return the headings in effect at ``line``, outermost first."""
        path: list[Block] = []
        for block in self.blocks:
            if block.start >= line:
                break
            if block.kind == "heading":
                path = [h for h in path if h.level < block.level] + [block]
        return path

    def fields(self) -> dict[str, str]:
        """Return the ``**Key:** value`` lines outside code as written, first value of each key."""
        found: dict[str, str] = {}
        for block in self.blocks:
            if block.kind in ("paragraph", "list"):
                for key, value in _FIELD.findall(block.text):
                    if plain_text(value):
                        found.setdefault(key.strip(), value.strip())
        return found


def parse_markdown(text: str) -> Document:
    """Parse Markdown into blocks. markdown-it-py accepts any text, so this does not raise."""
    lines = text.splitlines()
    parser = MarkdownIt("commonmark").enable("table")
    blocks: list[Block] = []
    tokens = parser.parse(text)
    index = 0
    while index < len(tokens):
        index = _read_block(tokens, index, lines, blocks)
    blocks.sort(key=lambda block: (block.start, block.kind != "heading"))
    return Document(lines, blocks)


def plain_text(markdown: str) -> str:
    """Return inline Markdown as plain text: link text kept, emphasis marks dropped."""
    text = _LINK.sub(lambda match: match.group(1), markdown)
    return _EMPHASIS.sub("", text).strip()


def link_targets(markdown: str) -> list[str]:
    """Return the targets of the inline links in a Markdown text."""
    return [match.group(2) for match in _LINK.finditer(markdown)]


def _read_block(
    tokens: list[MarkdownToken], index: int, lines: list[str], blocks: list[Block]
) -> int:
    token = tokens[index]
    start, end = token.map if token.map else (0, 0)
    source = "\n".join(lines[start:end])
    if token.type == "heading_open":
        inline = tokens[index + 1] if index + 1 < len(tokens) else None
        title = plain_text(inline.content) if inline is not None else ""
        blocks.append(Block("heading", start, end, title, level=int(token.tag[1:] or 1)))
        return index + 3
    if token.type == "fence":
        blocks.append(Block("fence", start, end, token.content, info=token.info.strip()))
        return index + 1
    if token.type == "code_block":
        blocks.append(Block("code", start, end, token.content))
        return index + 1
    if token.type == "table_open":
        close = _closing(tokens, index)
        blocks.append(Block("table", start, end, source, rows=_table_rows(tokens[index:close])))
        return close + 1
    if token.type in ("bullet_list_open", "ordered_list_open", "blockquote_open"):
        close = _closing(tokens, index)
        kind = "quote" if token.type == "blockquote_open" else "list"
        blocks.append(Block(kind, start, end, source))
        # Code blocks inside lists and quotes are queries too.
        for inner in tokens[index + 1 : close]:
            if inner.type in ("fence", "code_block") and inner.map:
                code_kind = "fence" if inner.type == "fence" else "code"
                inner_start, inner_end = inner.map
                blocks.append(
                    Block(code_kind, inner_start, inner_end, inner.content, info=inner.info.strip())
                )
        return close + 1
    if token.type == "paragraph_open":
        blocks.append(Block("paragraph", start, end, source))
        return _closing(tokens, index) + 1
    if token.type == "html_block":
        blocks.append(Block("html", start, end, token.content))
    elif token.type == "hr":
        blocks.append(Block("rule", start, end, ""))
    return index + 1


def _code_blocks(tokens: list[MarkdownToken]) -> list[Block]:
    blocks: list[Block] = []
    for token in tokens:
        if token.type in ("fence", "code_block") and token.map:
            kind = "fence" if token.type == "fence" else "code"
            start, end = token.map
            blocks.append(Block(kind, start, end, token.content, info=token.info.strip()))
    return blocks


def _closing(tokens: list[MarkdownToken], index: int) -> int:
    """Return the index of the token closing the one at ``index``, or the last index."""
    depth = 0
    for position in range(index, len(tokens)):
        depth += tokens[position].nesting
        if depth <= 0:
            return position
    return len(tokens) - 1


def _table_rows(tokens: list[MarkdownToken]) -> list[list[str]]:
    rows: list[list[str]] = []
    for token in tokens:
        if token.type == "tr_open":
            rows.append([])
        elif token.type == "inline" and rows:
            rows[-1].append(token.content.strip())
    return rows
