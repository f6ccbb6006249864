"""Error family: every error raised on bad input says where in the input it happened."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Location:
    """A place in a source file; line and column are 1-based when known."""

    source: str
    path: str
    line: int | None = None
    column: int | None = None

    def __str__(self) -> str:
        text = f"{self.source}:{self.path}"
        if self.line is not None:
            text += f":{self.line}"
            if self.column is not None:
                text += f":{self.column}"
        return text


class SocfeedError(Exception):
    """Base of every error socfeed raises on purpose; carries a location when one is known."""

    def __init__(self, reason: str, location: Location | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.location = location

    def __str__(self) -> str:
        if self.location is None:
            return self.reason
        return f"{self.location}: {self.reason}"


class ConfigError(SocfeedError):
    """Invalid or missing configuration (source list, settings)."""


class SourceError(SocfeedError):
    """A source repository could not be fetched or read."""


class ParseError(SocfeedError):
    """A rule file could not be parsed into rules."""


class NormalizationError(SocfeedError):
    """A parsed rule has a value that cannot be mapped to the rule model."""


class StoreError(SocfeedError):
    """The rule store could not be opened, read or written."""
