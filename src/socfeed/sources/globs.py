"""Path globs for include, exclude and context patterns, compiled to regular expressions.

A pattern is a POSIX path relative to the repository root and matching is case-sensitive.
``*`` matches any characters within one path segment, ``?`` one character and ``[abc]`` or
``[!abc]`` one character of a set. ``**`` as a whole segment matches zero or more folders,
or everything below when it ends the pattern. No wildcard matches a segment that starts
with a dot, so ``**/*.md`` skips ``.github/``, while ``.script/*.json`` names it on purpose.
"""

from __future__ import annotations

import re
from functools import lru_cache

# One path segment that does not start with a dot.
_VISIBLE_SEGMENT = r"(?!\.)[^/]+"


@lru_cache(maxsize=512)
def compile_glob(pattern: str) -> re.Pattern[str]:
    """Compile a glob to a regex for ``fullmatch``; raise ValueError on an invalid pattern."""
    _check_pattern(pattern)
    segments = pattern.split("/")
    parts: list[str] = []
    for index, segment in enumerate(segments):
        is_last = index == len(segments) - 1
        if segment == "**":
            if is_last:
                parts.append(f"{_VISIBLE_SEGMENT}(?:/{_VISIBLE_SEGMENT})*")
            else:
                parts.append(f"(?:{_VISIBLE_SEGMENT}/)*")
            continue
        parts.append(_segment_regex(segment, pattern))
        if not is_last:
            parts.append("/")
    return re.compile("".join(parts))


def matches_any(path: str, patterns: tuple[str, ...]) -> bool:
    """Return whether the POSIX relative ``path`` matches one of ``patterns``."""
    return any(compile_glob(pattern).fullmatch(path) for pattern in patterns)


def _check_pattern(pattern: str) -> None:
    if not pattern or not pattern.strip():
        raise ValueError("empty glob pattern")
    if pattern.startswith("/") or "\\" in pattern:
        raise ValueError(
            f"invalid glob {pattern!r}: write a path relative to the repository root with '/'"
        )
    if any(segment in ("", ".", "..") for segment in pattern.split("/")):
        raise ValueError(f"invalid glob {pattern!r}: empty, '.' and '..' segments are not allowed")


def _segment_regex(segment: str, pattern: str) -> str:
    regex: list[str] = []
    if segment[0] in "*?[":
        regex.append(r"(?!\.)")
    index = 0
    while index < len(segment):
        char = segment[index]
        if char == "*":
            regex.append("[^/]*")
        elif char == "?":
            regex.append("[^/]")
        elif char == "[":
            char_class, index = _char_class(segment, index, pattern)
            regex.append(char_class)
            continue
        else:
            regex.append(re.escape(char))
        index += 1
    return "".join(regex)


def _char_class(segment: str, start: int, pattern: str) -> tuple[str, int]:
    """Translate the ``[...]`` set at ``start``; return its regex and the index after it."""
    index = start + 1
    negate = index < len(segment) and segment[index] == "!"
    if negate:
        index += 1
    # A "]" right after the opening bracket is a member of the set, as in fnmatch.
    end = segment.find("]", index + 1 if index < len(segment) and segment[index] == "]" else index)
    if end == -1:
        raise ValueError(f"invalid glob {pattern!r}: '[' without a closing ']'")
    members = segment[index:end]
    escaped = "".join("\\" + char if char in "\\^[]" else char for char in members)
    prefix = "^/" if negate else ""
    return f"[{prefix}{escaped}]", end + 1
