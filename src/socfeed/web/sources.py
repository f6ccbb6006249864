"""The sources page: what each source's latest ingest found, and its parse errors."""

from __future__ import annotations

from collections import Counter

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from socfeed.web.deps import StoreDep
from socfeed.web.rendering import render, safe_href
from socfeed.web.schemas import SourcesOut, sources_out

router = APIRouter()


@router.get("/sources", response_class=HTMLResponse, include_in_schema=False)
def sources_page(request: Request, store: StoreDep) -> HTMLResponse:
    """Render the sources page."""
    records = store.sources()
    errors = store.errors()
    context = {
        "section": "sources",
        "sources": records,
        "links": {record.name: safe_href(record.web_url or record.repo_url) for record in records},
        "errors": errors,
        "error_counts": Counter(error.source for error in errors),
        "sample_sources": [record.name for record in records if record.is_sample],
    }
    return render(request, "sources.html", context)


@router.get("/api/sources", response_model=SourcesOut, tags=["sources"])
def api_sources(store: StoreDep) -> SourcesOut:
    """Return every source with the numbers of its latest ingest, and the parse errors."""
    return sources_out(store.sources(), store.errors())
