"""Downloads of the rules matching the feed's filters: CSV, JSON Lines, STIX, Navigator, Atom.

The exporters of ``socfeed.export`` write text to a stream while they read rules page by
page. A worker thread runs one and hands its output over in chunks through a bounded
queue, so the response starts before the last rule is read and a slow client holds back
the export instead of filling memory.
"""

from __future__ import annotations

import io
import logging
import queue
import threading
from collections.abc import Iterator
from typing import Annotated, Any, Literal, TextIO, cast

from fastapi import APIRouter, Path, Request
from fastapi.responses import StreamingResponse

from socfeed.export import ExportContext, export_rules, get_exporter
from socfeed.store import FeedQuery, Store
from socfeed.web.deps import FeedQueryDep, StoreDep
from socfeed.web.params import feed_url, filters_only
from socfeed.web.schemas import ERROR_RESPONSES

log = logging.getLogger(__name__)

router = APIRouter()

ApiFormat = Literal["csv", "jsonl", "navigator", "stix"]
# Download names per format; the Atom feed is shown inline by feed readers instead.
FILENAMES = {
    "csv": "socfeed-rules.csv",
    "jsonl": "socfeed-rules.jsonl",
    "navigator": "socfeed-navigator-layer.json",
    "stix": "socfeed-rules.stix.json",
}
CHUNK_CHARS = 64 * 1024
QUEUE_CHUNKS = 16
# A client that reads nothing for this long is taken as gone, and the export stops.
STALL_SECONDS = 120.0


EXPORT_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The export, streamed; the Content-Disposition header names the file.",
        "content": {
            "text/csv": {"schema": {"type": "string"}},
            "application/x-ndjson": {"schema": {"type": "string"}},
            "application/json": {"schema": {"type": "object"}},
            "application/stix+json": {"schema": {"type": "object"}},
        },
    },
    **ERROR_RESPONSES,
}


@router.get(
    "/api/export/{format}",
    response_class=StreamingResponse,
    responses=EXPORT_RESPONSES,
    tags=["export"],
)
def api_export(
    format: Annotated[ApiFormat, Path(description="Export format.")],
    query: FeedQueryDep,
    store: StoreDep,
    request: Request,
) -> StreamingResponse:
    """Export every rule matching the feed's filters; order and page are ignored."""
    return export_response(store, filters_only(query), format, request, attachment=True)


@router.get(
    "/coverage/navigator.json",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "An ATT&CK Navigator layer (format 4.5), as a download.",
            "content": {"application/json": {"schema": {"type": "object"}}},
        },
        **ERROR_RESPONSES,
    },
    tags=["coverage"],
)
def navigator_layer(query: FeedQueryDep, store: StoreDep, request: Request) -> StreamingResponse:
    """Download the coverage view as an ATT&CK Navigator layer: rules per technique."""
    return export_response(store, filters_only(query), "navigator", request, attachment=True)


@router.get(
    "/feed.atom",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "Atom feed (RFC 4287) of the newest rules, at most 200.",
            "content": {"application/atom+xml": {"schema": {"type": "string"}}},
        },
        **ERROR_RESPONSES,
    },
    tags=["feeds"],
)
def atom_feed(query: FeedQueryDep, store: StoreDep, request: Request) -> StreamingResponse:
    """Return an Atom feed of new and changed rules, newest first, with the feed's filters."""
    return export_response(store, filters_only(query), "atom", request, attachment=False)


def export_response(
    store: Store, query: FeedQuery, name: str, request: Request, attachment: bool
) -> StreamingResponse:
    """Start an export in a worker thread and stream its output."""
    exporter = get_exporter(name)
    base_url = str(request.base_url).rstrip("/")
    self_path = "/feed.atom" if name == "atom" else str(request.url.path)
    context = ExportContext(base_url=base_url, self_url=base_url + feed_url(query, self_path))
    chunks = _start_export(store, query, name, context)
    media_type = exporter.media_type
    if media_type.startswith("text/") or media_type.endswith("+xml"):
        media_type += "; charset=utf-8"
    headers = {}
    if attachment:
        headers["Content-Disposition"] = f'attachment; filename="{FILENAMES[name]}"'
    return StreamingResponse(chunks, media_type=media_type, headers=headers)


class _Stopped(Exception):
    """The client went away, so the export stops."""


class _QueueWriter(io.TextIOBase):
    """A text stream that hands its output to a queue in chunks of encoded UTF-8."""

    def __init__(self, chunks: queue.Queue[bytes | BaseException | None], stop: threading.Event):
        self._chunks = chunks
        self._stop = stop
        self._pending: list[str] = []
        self._size = 0

    def write(self, text: str) -> int:
        self._pending.append(text)
        self._size += len(text)
        if self._size >= CHUNK_CHARS:
            self.flush()
        return len(text)

    def flush(self) -> None:
        if self._pending:
            data = "".join(self._pending).encode("utf-8", "replace")
            self._pending, self._size = [], 0
            put(self._chunks, data, self._stop)


def put(
    chunks: queue.Queue[bytes | BaseException | None],
    item: bytes | BaseException | None,
    stop: threading.Event,
) -> None:
    """Put ``item`` on the queue, waiting while it is full; raise _Stopped once ``stop`` is set."""
    waited = 0.0
    while not stop.is_set():
        try:
            chunks.put(item, timeout=1.0)
            return
        except queue.Full:
            waited += 1.0
            if waited >= STALL_SECONDS:
                break
    raise _Stopped


def _start_export(
    store: Store, query: FeedQuery, name: str, context: ExportContext
) -> Iterator[bytes]:
    """Run the export in a thread; return its chunks once the first one (or an error) is in.

    Waiting for the first chunk lets an export that fails at once, on an unreadable store,
    get a proper error response instead of an empty 200.
    """
    chunks: queue.Queue[bytes | BaseException | None] = queue.Queue(maxsize=QUEUE_CHUNKS)
    stop = threading.Event()

    def run() -> None:
        writer = _QueueWriter(chunks, stop)
        try:
            # _QueueWriter implements the write() that exporters call on a TextIO.
            export_rules(store, query, name, cast(TextIO, writer), context)
            writer.flush()
            put(chunks, None, stop)
        except _Stopped:
            log.info("export stopped, client gone format=%s", name)
        except Exception as exc:  # handed to the response, which raises or logs it
            try:
                put(chunks, exc, stop)
            except _Stopped:
                log.error("export failed format=%s error=%r", name, exc)

    threading.Thread(target=run, name=f"export-{name}", daemon=True).start()
    first = chunks.get()
    if isinstance(first, BaseException):
        stop.set()
        raise first
    return _drain(first, chunks, stop, name)


def _drain(
    first: bytes | None,
    chunks: queue.Queue[bytes | BaseException | None],
    stop: threading.Event,
    name: str,
) -> Iterator[bytes]:
    try:
        item: bytes | BaseException | None = first
        while item is not None:
            if isinstance(item, BaseException):
                # The status line is sent already; the client sees a cut-off download.
                log.error("export failed while streaming format=%s error=%r", name, item)
                return
            yield item
            item = chunks.get()
    finally:
        stop.set()
