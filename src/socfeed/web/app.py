"""Build the FastAPI app: pages, JSON API, static files and one error shape."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from http import HTTPStatus

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.gzip import GZipMiddleware
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException

from socfeed.store import Store
from socfeed.web import coverage, feed, rule_page, sources
from socfeed.web.deps import is_api_path
from socfeed.web.rendering import STATIC_DIR, build_templates, highlight_css, render

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
        docs_url=None,
        redoc_url=None,
        openapi_url="/api/openapi.json",
    )
    app.state.store = store
    app.state.templates = build_templates()
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    css = highlight_css()

    @app.get("/highlight.css", include_in_schema=False)
    def highlight_stylesheet() -> Response:
        return Response(css, media_type="text/css")

    for module in (feed, rule_page, coverage, sources):
        app.include_router(module.router)

    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(SQLAlchemyError, _store_error)
    app.add_exception_handler(Exception, _server_error)
    app.middleware("http")(_security_headers)
    app.add_middleware(GZipMiddleware, minimum_size=1024)
    return app


async def _security_headers(
    request: Request, call_next: Callable[[Request], Awaitable[Response]]
) -> Response:
    response = await call_next(request)
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def error_response(request: Request, status: int, message: str) -> Response:
    """Return an error as JSON under /api and as an HTML page elsewhere."""
    if is_api_path(request.url.path):
        return JSONResponse({"error": {"status": status, "message": message}}, status_code=status)
    context = {
        "status": status,
        "title": HTTPStatus(status).phrase,
        "message": message,
        "suggestions": [],
        "sample_sources": [],
    }
    return render(request, "error.html", context, status_code=status)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    message = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
    if exc.status_code == 404 and message == "Not Found":
        message = f"no page at {request.url.path}"
    response = error_response(request, exc.status_code, message)
    if exc.headers:
        response.headers.update(exc.headers)
    return response


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    problems = [_describe_problem(error) for error in exc.errors()]
    return error_response(request, 422, "invalid request: " + "; ".join(problems))


def _describe_problem(error: dict[str, object]) -> str:
    location = error.get("loc", ())
    # The first item is where the value came from ("query", "path"), the second its name.
    parts = list(location) if isinstance(location, list | tuple) else []
    name = str(parts[1]) if len(parts) > 1 else "request"
    text = f"{name}: {error.get('msg', 'invalid value')}"
    value = error.get("input")
    if isinstance(value, str | int | float):
        text += f" (got {value!r})"
    return text


async def _server_error(request: Request, exc: Exception) -> Response:
    # Starlette re-raises the exception after this response, so the server logs the trace.
    log.error("request failed path=%r error=%r", request.url.path, exc)
    return error_response(request, 500, "internal error; the server log has the details")


async def _store_error(request: Request, exc: Exception) -> Response:
    log.error("store read failed path=%r error=%s", request.url.path, exc)
    message = "the rule store could not be read; check the database file or URL and retry"
    return error_response(request, 503, message)
