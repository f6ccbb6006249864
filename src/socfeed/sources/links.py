"""Links from a rule back to its file on GitHub."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import quote

if TYPE_CHECKING:
    from socfeed.config import Source


def original_url(source: Source, ref: str | None, path: str) -> str:
    """Return ``https://github.com/<repo>/blob/<ref>/<path>`` with each segment percent-encoded.

    ``ref`` is a commit id or branch; None falls back to the source's ref and then to
    ``HEAD``, which GitHub resolves to the default branch. Every character of a path segment
    except letters, digits and ``-._~`` is encoded, so spaces, ``&``, ``#``, ``%`` and
    non-ASCII names give working links. Raises ValueError for an absolute path or one
    with a ``..`` segment.
    """
    segments = path.split("/")
    if path.startswith("/") or any(segment in ("", ".", "..") for segment in segments):
        raise ValueError(f"invalid file path {path!r}: expected a path relative to the root")
    encoded_path = "/".join(quote(segment, safe="") for segment in segments)
    # Branch names may contain "/", which GitHub expects unencoded.
    encoded_ref = quote(ref or source.ref or "HEAD", safe="/")
    return f"{source.web_url}/blob/{encoded_ref}/{encoded_path}"
