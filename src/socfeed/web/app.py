"""Build the FastAPI app: pages, JSON API, static files and one error shape."""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.gzip import GZipMiddleware
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException

from socfeed.store import Store
from socfeed.web import coverage, errors, exports, feed, my_data, rule_page, sources
from socfeed.web.facets import FacetCounter
from socfeed.web.rendering import STATIC_DIR, build_templates, highlight_css

log = logging.getLogger(__name__)

# Pages load only their own CSS and script, and no rule text can bring in anything else.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def create_app(store: Store) -> FastAPI:
    """Create the web app over ``store``."""
    # FastAPI's /docs and /redoc pages load their scripts from a CDN, so they are off. The
    # OpenAPI document itself is served.
    app = FastAPI(
        title="socfeed",
        summary="Public detection and hunting rules, normalized for SOC analysts.",
        description="Every HTML page has a JSON twin here that takes the same filters. "
        'Every error is JSON of the form {"error": {"status", "message"}}.',
        version=_version(),
        docs_url=None,
        redoc_url=None,
        openapi_url="/api/openapi.json",
        lifespan=_warm_facets,
    )
    app.state.store = store
    app.state.facets = FacetCounter(store)
    app.state.templates = build_templates()
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    css = highlight_css()

    @app.get("/highlight.css", include_in_schema=False)
    def highlight_stylesheet() -> Response:
        return Response(css, media_type="text/css")

    for module in (feed, rule_page, coverage, exports, sources, my_data):
        app.include_router(module.router)

    app.add_exception_handler(StarletteHTTPException, errors.http_error)
    app.add_exception_handler(RequestValidationError, errors.validation_error)
    app.add_exception_handler(SQLAlchemyError, errors.store_error)
    app.add_exception_handler(Exception, errors.server_error)
    app.middleware("http")(_security_headers)
    app.add_middleware(GZipMiddleware, minimum_size=1024)
    return app


@asynccontextmanager
async def _warm_facets(app: FastAPI) -> AsyncIterator[None]:
    """Build the facet index while the server starts, so the first page need not wait."""
    counter: FacetCounter = app.state.facets
    threading.Thread(target=_build_quietly, args=(counter,), name="facets", daemon=True).start()
    yield


def _build_quietly(counter: FacetCounter) -> None:
    try:
        counter.index()
    except SQLAlchemyError as exc:
        # The first request builds it again and reports the error to its client.
        log.warning("facet index not built at start error=%s", exc)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("socfeed")
    except PackageNotFoundError:
        return "0"


async def _security_headers(
    request: Request, call_next: Callable[[Request], Awaitable[Response]]
) -> Response:
    response = await call_next(request)
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response
