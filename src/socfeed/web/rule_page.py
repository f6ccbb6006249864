"""The rule page and its JSON twin."""

from __future__ import annotations

import logging

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse

from socfeed.store import Store
from socfeed.web.deps import StoreDep
from socfeed.web.rendering import api_rule_path, render
from socfeed.web.rule_view import build_view
from socfeed.web.schemas import NOT_FOUND_RESPONSES, RuleOut, rule_out

log = logging.getLogger(__name__)

router = APIRouter()


@router.get("/rules/{key:path}", response_class=HTMLResponse, include_in_schema=False)
def rule_page(key: str, request: Request, store: StoreDep) -> HTMLResponse:
    """Render the page of one rule, or a 404 page with keys that look alike."""
    rule = store.rule(key)
    if rule is None:
        log.info("rule not found key=%r", key)
        context = {
            "status": 404,
            "title": "Rule not found",
            "message": f"No rule is stored under the key {key!r}.",
            "suggestions": _similar_keys(store, key),
        }
        return render(request, "error.html", context, status_code=404)
    context = {"view": build_view(rule, store), "rule": rule, "api_url": api_rule_path(rule.key)}
    return render(request, "rule.html", context)


@router.get(
    "/api/rules/{key:path}", response_model=RuleOut, responses=NOT_FOUND_RESPONSES, tags=["rules"]
)
def api_rule(key: str, store: StoreDep) -> RuleOut:
    """Return one rule with every field of the normalized model, its links and history."""
    rule = store.rule(key)
    if rule is None:
        raise HTTPException(404, f"no rule is stored under the key {key!r}")
    return rule_out(rule, store.links(key), store.suggestions(key), store.versions(key))


def _similar_keys(store: Store, key: str) -> list[str]:
    # A key whose source prefix is wrong or missing may still end with a rule id or path.
    needle = key.split(":", 1)[-1]
    return store.find_rule_keys(needle) if needle else []
