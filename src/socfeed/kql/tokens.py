"""A forgiving KQL tokenizer: names, strings, numbers and punctuation, with comments apart.

It never raises, as the reader tests check with broken and mutated queries. Characters
that start no KQL token become one-character punctuation tokens, and an unterminated
string runs to the end of its line (or of the text, for a multi-line string), because
rule files in the wild contain broken queries too.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

TokenKind = Literal["name", "string", "number", "punct", "comment"]

# Operators written with a hyphen. Everywhere else "a-b" is a subtraction.
HYPHENATED_WORDS = frozenset(
    {
        "make-series",
        "mv-apply",
        "mv-expand",
        "parse-kv",
        "parse-where",
        "project-away",
        "project-keep",
        "project-rename",
        "project-reorder",
    }
)

_MULTI_CHAR_PUNCT = ("```", "~~~", "==", "!=", "=~", "!~", "<=", ">=", "..", "=>", "<>")
_NAME_START = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_$")
_NAME_PART = _NAME_START | frozenset("0123456789")
_DIGITS = frozenset("0123456789")
# Zero-width characters that pages copied from the web leave in queries. KQL ignores them.
_INVISIBLE = frozenset("\u200b\u200c\u200d\u2060\ufeff")


@dataclass(frozen=True)
class Token:
    """One lexical unit of a query, with ``start`` and ``end`` offsets into the query text."""

    kind: TokenKind
    text: str
    start: int
    end: int
    line: int  # 1-based

    def is_punct(self, *texts: str) -> bool:
        """Return True for a punctuation token whose text is one of ``texts``."""
        return self.kind == "punct" and self.text in texts

    def is_word(self, *words: str) -> bool:
        """Return True for a name token equal to one of ``words``, ignoring case."""
        return self.kind == "name" and self.text.lower() in words

    @property
    def string_value(self) -> str:
        """The text of a string literal without quotes, prefixes or escapes."""
        return _unquote(self.text)


def tokenize(text: str) -> list[Token]:
    """Split a query into tokens, leaving out comments and whitespace."""
    return [token for token in iter_tokens(text) if token.kind != "comment"]


def comments(text: str) -> list[str]:
    """Return the text of every ``//`` comment of a query, without the slashes."""
    return [token.text[2:].strip() for token in iter_tokens(text) if token.kind == "comment"]


def iter_tokens(text: str) -> Iterator[Token]:
    """Yield every token of ``text``, comments included, in order."""
    scanner = _Scanner(text)
    while True:
        token = scanner.next_token()
        if token is None:
            return
        yield token


class _Scanner:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.line = 1

    def next_token(self) -> Token | None:
        self._skip_whitespace()
        if self.pos >= len(self.text):
            return None
        start, line = self.pos, self.line
        end, kind = self._scan_one()
        self.line += self.text.count("\n", start, end)
        self.pos = end
        return Token(kind, self.text[start:end], start, end, line)

    def _skip_whitespace(self) -> None:
        text = self.text
        while self.pos < len(text) and (text[self.pos].isspace() or text[self.pos] in _INVISIBLE):
            if text[self.pos] == "\n":
                self.line += 1
            self.pos += 1

    def _scan_one(self) -> tuple[int, TokenKind]:
        text, pos = self.text, self.pos
        char = text[pos]
        ahead = text[pos : pos + 3]
        if ahead.startswith("//"):
            return _line_end(text, pos), "comment"
        if ahead in ("```", "~~~"):
            return _multiline_string_end(text, pos), "string"
        if char in "'\"":
            return _quoted_end(text, pos, verbatim=False), "string"
        if char == "@" and ahead[1:2] in ("'", '"'):
            return _quoted_end(text, pos + 1, verbatim=True), "string"
        if char in "hH" and _starts_obfuscated_string(text, pos):
            return _obfuscated_end(text, pos), "string"
        if char in _NAME_START:
            return self._name_end(pos), "name"
        if char in _DIGITS:
            return _number_end(text, pos), "number"
        for punct in _MULTI_CHAR_PUNCT:
            if text.startswith(punct, pos):
                return pos + len(punct), "punct"
        return pos + 1, "punct"

    def _name_end(self, pos: int) -> int:
        end = _word_end(self.text, pos)
        # Join "project-away" and its kin, which are one operator name.
        if end < len(self.text) and self.text[end] == "-":
            second = _word_end(self.text, end + 1)
            if second > end + 1 and self.text[pos:second].lower() in HYPHENATED_WORDS:
                return second
        return end


def _word_end(text: str, pos: int) -> int:
    end = pos
    while end < len(text) and text[end] in _NAME_PART:
        end += 1
    return end


def _line_end(text: str, pos: int) -> int:
    end = text.find("\n", pos)
    return len(text) if end == -1 else end


def _number_end(text: str, pos: int) -> int:
    # Digits, letters and underscores cover 0x17, 7d, 4hr and names such as 5_Min_Count.
    # A dot counts only before a digit, so that 1.5 is one number and 1..5 stays a range.
    end = pos
    while end < len(text):
        char = text[end]
        if char in _NAME_PART or (char == "." and text[end + 1 : end + 2] in _DIGITS):
            end += 1
        else:
            break
    return end


def _quoted_end(text: str, pos: int, *, verbatim: bool) -> int:
    """Return the offset after the string that opens at ``pos``. A line break ends it."""
    quote = text[pos]
    end = pos + 1
    while end < len(text):
        char = text[end]
        if char == "\n":
            return end
        if char == "\\" and not verbatim:
            end += 2
            continue
        if char == quote:
            # A verbatim string writes its quote character twice to include it.
            if verbatim and text[end + 1 : end + 2] == quote:
                end += 2
                continue
            return end + 1
        end += 1
    return len(text)


def _multiline_string_end(text: str, pos: int) -> int:
    fence = text[pos : pos + 3]
    close = text.find(fence, pos + 3)
    return len(text) if close == -1 else close + 3


def _starts_obfuscated_string(text: str, pos: int) -> bool:
    if pos > 0 and text[pos - 1] in _NAME_PART:
        return False
    rest = text[pos + 1 : pos + 3]
    return rest[:1] in ("'", '"') or (rest[:1] == "@" and rest[1:2] in ("'", '"'))


def _obfuscated_end(text: str, pos: int) -> int:
    if text[pos + 1] == "@":
        return _quoted_end(text, pos + 2, verbatim=True)
    return _quoted_end(text, pos + 1, verbatim=False)


def _unquote(literal: str) -> str:
    body = literal
    if body[:1] in "hH" and len(body) > 1 and body[1] in "@'\"":
        body = body[1:]
    verbatim = body.startswith("@")
    if verbatim:
        body = body[1:]
    if body[:3] in ("```", "~~~"):
        return body[3:-3] if len(body) >= 6 and body.endswith(body[:3]) else body[3:]
    if not body or body[0] not in "'\"":
        return body
    quote = body[0]
    inner = body[1:-1] if len(body) > 1 and body.endswith(quote) else body[1:]
    if verbatim:
        return inner.replace(quote * 2, quote)
    return _unescape(inner)


def _unescape(inner: str) -> str:
    out: list[str] = []
    index = 0
    while index < len(inner):
        char = inner[index]
        if char == "\\" and index + 1 < len(inner):
            escaped = inner[index + 1]
            out.append({"n": "\n", "t": "\t", "r": "\r"}.get(escaped, escaped))
            index += 2
            continue
        out.append(char)
        index += 1
    return "".join(out)
