"""Split a text that contains several KQL queries, and tell KQL from other code.

Query files such as ``.kql`` and ``.txt`` collections put queries one after another,
separated by blank lines, while a single query may contain blank lines too. A paragraph
starts a new query only when the text before it is a complete query: its brackets are
closed, it ends with a tabular statement, and no pipe or operator dangles at its end. The
paragraph must not continue that query either, so it starts with neither ``|`` nor an
operator such as ``and`` or ``on``.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from socfeed.kql.tables import OPERATOR_WORDS
from socfeed.kql.tokens import Token, iter_tokens, tokenize

# Tokens that can only continue the previous line, never start a query.
_CONTINUATION_WORDS = frozenset({"and", "or", "on", "by", "with", "to", "step", "from", "kind"})
_CONTINUATION_PUNCT = frozenset(
    {"|", ")", "]", "}", ",", ".", "=", "==", "!=", "=~", "!~", "<", ">", "<=", ">=", "+", "-"}
)
_DANGLING_PUNCT = frozenset(
    {"|", "(", "[", "{", ",", "=", "==", "!=", "=~", "!~", "<", ">", "<=", ">=", "+", "-", "*"}
)
_DANGLING_WORDS = frozenset({"and", "or", "on", "by", "with", "let", "in", "not"})
# Zero-width characters that pages copied from the web leave before comments.
_INVISIBLE = "\u200b\u200c\u200d\u2060\ufeff"
_SOURCE_WORDS = frozenset({"let", "union", "search", "find", "print", "datatable", "range"})


@dataclass
class QueryChunk:
    """One query cut from a text, with the comments written directly above it."""

    text: str
    first_line: int  # 1-based line of the chunk in the text it was cut from
    leading_comments: list[str] = field(default_factory=list)  # attached above, no slashes
    # Comment paragraphs between the previous query and this one, without slashes.
    preceding_comments: list[str] = field(default_factory=list)


@dataclass
class _Paragraph:
    first_line: int  # 1-based
    last_line: int
    code: list[Token]  # non-comment tokens that start in this paragraph
    comment_lines: list[str]  # lines that hold only a comment, in order
    leading_comments: list[str]  # comment lines before the first code line


def split_queries(text: str) -> list[QueryChunk]:
    """Cut a text into its queries. Text with only comments yields no query."""
    lines = text.splitlines()
    chunks: list[QueryChunk] = []
    current: list[_Paragraph] = []
    current_preceding: list[str] = []
    pending: list[str] = []
    for paragraph in _paragraphs(text, lines):
        if current and _is_complete(current) and _starts_query(paragraph):
            chunks.append(_chunk(current, current_preceding, lines))
            current = []
        if not paragraph.code and (not current or _is_complete(current)):
            # Commentary between queries belongs to neither query's code.
            pending.extend(_without_slashes(paragraph.comment_lines))
            continue
        if not current:
            current_preceding = pending
        pending = []
        current.append(paragraph)
    if current:
        chunks.append(_chunk(current, current_preceding, lines))
    return chunks


def looks_like_kql(text: str) -> bool:
    """Return True when a code block reads as KQL rather than prose or another language."""
    tokens = tokenize(text)
    if not tokens:
        return False
    # PowerShell also pipes into "where", but it names variables $_ and $name, while KQL
    # only writes $left and $right.
    if any(t.text.startswith("$") and t.text not in ("$left", "$right") for t in tokens):
        return False
    pipe_words = OPERATOR_WORDS | {"union"}
    for token, following in itertools.pairwise(tokens):
        if token.is_punct("|") and following.text.lower() in pipe_words:
            return True
    first = tokens[0]
    if first.is_word("let") and len(tokens) > 2 and tokens[2].is_punct("="):
        return True
    return first.kind == "name" and first.text.lower() in _SOURCE_WORDS - {"let"}


def _paragraphs(text: str, lines: list[str]) -> list[_Paragraph]:
    kinds = _line_kinds(text, len(lines))
    code_by_line: dict[int, list[Token]] = {}
    for token in tokenize(text):
        code_by_line.setdefault(token.line, []).append(token)
    paragraphs: list[_Paragraph] = []
    current: _Paragraph | None = None
    for index, kind in enumerate(kinds):
        if kind == "blank":
            current = None
            continue
        line_number = index + 1
        if current is None:
            current = _Paragraph(line_number, line_number, [], [], [])
            paragraphs.append(current)
        current.last_line = line_number
        if kind == "comment":
            current.comment_lines.append(lines[index])
            if not current.code:
                current.leading_comments.append(lines[index])
        current.code.extend(code_by_line.get(line_number, []))
    return paragraphs


def _line_kinds(text: str, line_count: int) -> list[str]:
    """Classify each line as "blank", "comment" or "code". A multi-line string is code."""
    kinds = ["blank"] * line_count
    for token in iter_tokens(text):
        last = token.line + text.count("\n", token.start, token.end)
        for line in range(token.line, min(last, line_count) + 1):
            if token.kind == "comment":
                if kinds[line - 1] == "blank":
                    kinds[line - 1] = "comment"
            else:
                kinds[line - 1] = "code"
    return kinds


def _is_complete(paragraphs: list[_Paragraph]) -> bool:
    """Return True when the code so far ends a query: closed brackets, a final statement."""
    tokens = [token for paragraph in paragraphs for token in paragraph.code]
    if not tokens:
        return False
    depth = 0
    statement_start = 0
    for index, token in enumerate(tokens):
        if token.is_punct("(", "[", "{"):
            depth += 1
        elif token.is_punct(")", "]", "}"):
            depth -= 1
        elif token.is_punct(";") and depth <= 0:
            statement_start = index + 1
    if depth > 0 or statement_start >= len(tokens) or tokens[statement_start].is_word("let"):
        return False
    last = tokens[-1]
    if last.is_punct(*_DANGLING_PUNCT):
        return False
    return not (last.kind == "name" and last.text.lower() in _DANGLING_WORDS)


def _starts_query(paragraph: _Paragraph) -> bool:
    if not paragraph.code:
        return False
    first = paragraph.code[0]
    if first.kind == "punct":
        return first.is_punct("(") or first.text not in _CONTINUATION_PUNCT
    if first.kind == "name":
        lowered = first.text.lower()
        return lowered not in _CONTINUATION_WORDS and lowered not in OPERATOR_WORDS
    return first.kind != "number"


def _chunk(paragraphs: list[_Paragraph], preceding: list[str], lines: list[str]) -> QueryChunk:
    first, last = paragraphs[0].first_line, paragraphs[-1].last_line
    text = "\n".join(lines[first - 1 : last])
    leading = _without_slashes(paragraphs[0].leading_comments)
    return QueryChunk(text, first, leading, preceding)


def _without_slashes(lines: list[str]) -> list[str]:
    texts = (line.strip().strip(_INVISIBLE).lstrip("/").strip() for line in lines)
    return [text for text in texts if text]
