"""One error shape: JSON under /api and for downloads, an HTML page elsewhere."""

from __future__ import annotations

import logging
from http import HTTPStatus

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from socfeed.web.deps import is_api_path
from socfeed.web.rendering import render

log = logging.getLogger(__name__)


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


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    message = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
    if exc.status_code == 404 and message == "Not Found":
        message = f"no page at {request.url.path}"
    response = error_response(request, exc.status_code, message)
    if exc.headers:
        response.headers.update(exc.headers)
    return response


async def validation_error(request: Request, exc: Exception) -> Response:
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


async def server_error(request: Request, exc: Exception) -> Response:
    # Starlette re-raises the exception after this response, so the server logs the trace.
    log.error("request failed path=%r error=%r", request.url.path, exc)
    return error_response(request, 500, "internal error; the server log has the details")


async def store_error(request: Request, exc: Exception) -> Response:
    log.error("store read failed path=%r error=%s", request.url.path, exc)
    message = "the rule store could not be read; check the database file or URL and retry"
    return error_response(request, 503, message)
