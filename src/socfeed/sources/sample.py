"""The small sample of real rules shipped in the package, read when a source can't be fetched."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import TYPE_CHECKING

from socfeed.sources.checkout import Checkout, utc_timestamp

if TYPE_CHECKING:
    from socfeed.config import Source

log = logging.getLogger(__name__)

SAMPLE_DIR = Path(__file__).resolve().parents[1] / "sample"
# Each sample folder describes its origin in this file, which is never read as a rule.
SAMPLE_NOTE = "SAMPLE.md"
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
# The line of SAMPLE.md that names the commit every file of the sample was copied from.
_COMMIT_LINE = re.compile(r"^- Commit: `([0-9a-f]{40})`\s*$", re.MULTILINE)


def sample_root(name: str) -> Path | None:
    """Return the shipped sample folder of source ``name``, or None when there is none."""
    if not _NAME.match(name):
        return None
    folder = SAMPLE_DIR / name
    return folder if (folder / SAMPLE_NOTE).is_file() else None


def is_sample_root(folder: Path) -> bool:
    """Return whether ``folder`` is one of the shipped sample folders."""
    return folder.resolve().parent == SAMPLE_DIR and (folder / SAMPLE_NOTE).is_file()


def sample_checkout(source: Source) -> Checkout | None:
    """Return a checkout of the shipped sample of ``source``, or None when none is shipped.

    The commit comes from SAMPLE.md. It is None when the sample's files come from
    different commits, as for azure-sentinel.
    """
    root = sample_root(source.name)
    if root is None:
        log.warning("no shipped sample source=%s", source.name)
        return None
    note = (root / SAMPLE_NOTE).read_text(encoding="utf-8")
    match = _COMMIT_LINE.search(note)
    log.info("reading shipped sample source=%s path=%s", source.name, root)
    return Checkout(
        root=root,
        commit=match.group(1) if match else None,
        ref=None,
        retrieved_at=utc_timestamp(),
        location=str(root),
        is_sample=True,
        mode="sample",
    )
