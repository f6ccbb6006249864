"""Save "my data sources", the tables and log sources a user collects, in a cookie."""

from __future__ import annotations

import logging
from urllib.parse import parse_qs, urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from socfeed.web.errors import error_response
from socfeed.web.params import TABLES_COOKIE, split_tables, tables_cookie_value

log = logging.getLogger(__name__)

router = APIRouter()

COOKIE_MAX_AGE = 365 * 24 * 3600  # seconds
MAX_FORM_BYTES = 64 * 1024


@router.post("/my-data-sources", include_in_schema=False)
async def save_my_tables(request: Request) -> Response:
    """Save or clear the list of data sources from the feed's form, then go back."""
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        return error_response(request, 413, "the form is larger than 64 KiB; shorten the list")
    fields = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    target = local_path(fields.get("next", ["/"])[0])
    response = RedirectResponse(target, status_code=303)
    if fields.get("action", [""])[0] == "clear":
        response.delete_cookie(TABLES_COOKIE, path="/")
        log.info("my data sources cleared")
        return response

    tables = split_tables(fields.get("tables", []))
    try:
        value = tables_cookie_value(tables)
    except ValueError as exc:
        return error_response(request, 422, str(exc))
    response.set_cookie(
        TABLES_COOKIE, value, max_age=COOKIE_MAX_AGE, path="/", httponly=True, samesite="lax"
    )
    log.info("my data sources saved tables=%d", len(tables))
    return response


def local_path(target: str) -> str:
    """Return ``target`` if it is a path on this site, else "/"; no redirect leaves the site."""
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return "/"
    if "\\" in target:
        return "/"
    return target
