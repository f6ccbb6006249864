"""The folder a source was read from, and what is known of its origin."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

CheckoutMode = Literal["clone", "pull", "local", "mirror", "sample"]


@dataclass(frozen=True)
class Checkout:
    """A source's files on disk, ready to list and parse."""

    root: Path
    commit: str | None  # None when the folder has no .git; the UI shows "unknown"
    ref: str | None  # branch or tag, None when unknown or detached
    retrieved_at: str  # UTC, ISO 8601 with seconds and "Z"
    location: str  # the folder that was read
    is_sample: bool
    mode: CheckoutMode


def utc_timestamp() -> str:
    """Return the current UTC time as ``YYYY-MM-DDTHH:MM:SSZ``."""
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
