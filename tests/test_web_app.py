"""Tests of the web app as a whole: error shape, headers, static files, OpenAPI.

Also defines ``fill_store`` and ``filled_client``, which the other test_web_* modules
import, so that every page is tested against the same hand-made rules.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.exc import OperationalError

from socfeed.errors import Location, ParseError
from socfeed.model import DataSource, Rule
from socfeed.store import SourceRecord, Store, open_store
from socfeed.web import create_app

HOSTILE = "<script>alert(1)</script>"
SIGMA_ID = "5f1c2a3b-0000-4000-8000-000000000001"
SENTINEL_ID = "8e2d6f00-0000-4000-8000-000000000002"
HOSTILE_KEY = f"sigma:{SIGMA_ID}"
SENTINEL_KEY = f"azure-sentinel:{SENTINEL_ID}"
# A rule id with characters that must be percent-encoded in a path: "/", "?", "#", "%",
# a space and Cyrillic letters.
ODD_ID = "odd/id?x=1#frag 100% ключ"
ODD_KEY = f"splunk-security-content:{ODD_ID}"
FILLER_COUNT = 60


def make_rule(source: str, rule_id: str, title: str, **fields: Any) -> Rule:
    """Build a rule with the fields every rule needs and ``fields`` on top."""
    values: dict[str, Any] = {
        "source": source,
        "path": f"rules/{rule_id.replace('/', '_')}.yml",
        "rule_id": rule_id,
        "format": "sigma",
        "title": title,
        "language": "sigma",
        "kind": "detection",
        "query": "selection:\n  Image|endswith: '\\\\cmd.exe'\ncondition: selection\n",
        "raw_text": f"title: {title}\n",
        "retrieved_at": "2026-11-01T10:00:00Z",
        "commit": "0123456789abcdef0123456789abcdef01234567",
        "url": f"https://github.com/example/{source}/blob/main/rules/{rule_id}.yml",
    }
    values.update(fields)
    return Rule(**values)


def hostile_rule() -> Rule:
    """A Sigma rule whose title, query and description carry script tags and Unicode."""
    return make_rule(
        "sigma",
        SIGMA_ID,
        f"{HOSTILE} PowerShell “Download Cradle” Подозрительный",
        description=f"Detects {HOSTILE} downloads — “curly quotes” and Кириллица.",
        query=f"selection:\n  CommandLine|contains: '{HOSTILE}'\ncondition: selection\n",
        raw_text=f"title: {HOSTILE}\nlevel: high\n",
        severity="high",
        status="test",
        modified="2026-10-30",
        tactics=["Execution"],
        techniques=["T1059.001"],
        tags=["attack.execution", "attack.t1059.001", f"tag-{HOSTILE}"],
        data_sources=[
            DataSource(
                kind="logsource",
                name="windows/process_creation",
                note="Enable process creation logging (Sysmon event 1 or 4688).",
                details={"product": "windows", "category": "process_creation"},
            )
        ],
        references=["https://example.org/report", "javascript:alert(1)"],
        false_positives=["Admin scripts “install” software"],
        warnings=[f"date {HOSTILE} could not be read"],
        provenance={"kind": "derived: from the rules/ folder"},
        extra={"logsource": {"product": "windows", "category": "process_creation"}},
    )


def sentinel_rule() -> Rule:
    """A KQL rule with a custom table and an enrichment."""
    return make_rule(
        "azure-sentinel",
        SENTINEL_ID,
        "Rare logon to DemoVendor appliance",
        path="Detections/DemoVendor/RareLogon.yaml",
        format="sentinel",
        language="kql",
        query="DemoVendorLogs_CL\n| where EventType == 'logon'\n| join SecurityEvent on Account",
        raw_text="id: x\nname: Rare logon\nquery: |\n  DemoVendorLogs_CL\n",
        severity="medium",
        created="2026-09-01",
        tactics=["Initial Access"],
        techniques=["T1078"],
        data_sources=[
            DataSource(
                kind="table",
                name="DemoVendorLogs_CL",
                note="Needs a custom ingestion (DCR).",
                custom=True,
                origin="derived: read from the KQL query",
            ),
            DataSource(kind="table", name="SecurityEvent", note="Windows Security Events"),
        ],
        official=True,
        extra={
            "queryFrequency": "1h",
            "enrichment": sentinel_enrichment(),
            "first_seen": "2026-10-01T10:00:00Z",
            "changed_at": "2026-11-01T10:00:00Z",
            "change": {
                "status": "changed",
                "since": "2026-10-01T10:00:00Z",
                "fields": ["query", "severity"],
            },
        },
    )


def sentinel_enrichment() -> dict[str, Any]:
    """The enrichment of the KQL rule, in the shape socfeed.enrich.Enricher writes."""
    return {
        "version": 1,
        "attack_version": "19.2",
        "techniques": [
            {
                "id": "T1078",
                "known": True,
                "name": "Valid Accounts",
                "tactics": ["Initial Access", "Persistence"],
                "platforms": ["Windows", "Linux"],
                "summary": "Adversaries may obtain and abuse credentials of existing accounts.",
                "detection": "Watch for logons at odd hours from new places.",
                "data_components": ["Logon Session Creation"],
                "deprecated": False,
                "url": "https://attack.mitre.org/techniques/T1078",
            }
        ],
        "resolutions": [
            {
                "original": "T1078",
                "id": "T1078",
                "status": "ok",
                "replacement": None,
                "warning": "",
            },
            {
                "original": "T1086",
                "id": "T1086",
                "status": "revoked",
                "replacement": "T1059.001",
                "warning": "T1086 (PowerShell) is revoked in ATT&CK 19.2; replaced by T1059.001",
            },
        ],
        "unmatched_tactics": [],
        "hypothesis": {
            "text": "An attacker reuses a stolen account on the appliance.",
            "origin": "template",
            "model": "",
        },
        "false_positives": {
            "text": "Backup jobs log on at night.",
            "origin": "model",
            "model": "demo-model",
        },
        "references": ["https://attack.mitre.org/techniques/T1078"],
        "confidence": {
            "level": "medium",
            "from_source": ["title", "severity"],
            "derived": ["data_sources"],
            "inferred": ["hypothesis"],
            "missing": ["author"],
            "warnings": 0,
            "reasons": ["2 fields taken from the source, 1 derived from it, 1 inferred"],
        },
    }


def splunk_rules() -> list[Rule]:
    """A hunting rule without severity under an id that needs percent-encoding, and its twin."""
    odd = make_rule(
        "splunk-security-content",
        ODD_ID,
        "Odd key hunting search",
        format="splunk",
        language="spl",
        kind="hunting",
        query='| tstats count from datamodel=Endpoint.Processes where Processes.process="*"',
        created="2026-08-01",
        commit=None,
    )
    twin = make_rule(
        "splunk-security-content",
        ODD_ID,
        "Odd key twin",
        path="zz/twin.yml",
        format="splunk",
        language="spl",
        kind="hunting",
        query="index=main | stats count",
        created="2026-07-01",
    )
    return [odd, twin]


def filler_rules() -> list[Rule]:
    """Sigma rules with falling dates, for pagination."""
    return [
        make_rule(
            "sigma",
            f"filler-{number:03d}",
            f"Filler rule {number:03d}",
            severity="low",
            created=f"2020-01-{1 + number % 28:02d}",
            modified=f"{2025 - number // 28}-01-{1 + number % 28:02d}",
        )
        for number in range(FILLER_COUNT)
    ]


def fill_store(store: Store, sample: bool = True) -> None:
    """Store the hand-made rules of three sources; azure-sentinel is the shipped sample."""
    sigma = SourceRecord(
        name="sigma",
        format="sigma",
        repo_url="https://github.com/SigmaHQ/sigma.git",
        web_url="https://github.com/SigmaHQ/sigma",
        licence="Detection Rule License 1.1",
        commit="0123456789abcdef0123456789abcdef01234567",
        retrieved_at="2026-11-01T10:00:00Z",
        files_seen=70,
        files_with_rules=61,
        files_failed=1,
        rules=61,
    )
    bad_file = ParseError(
        "found a tab character; replace it with spaces", Location("sigma", "rules/bad.yml", 12, 3)
    )
    store.replace_source(sigma, [hostile_rule(), *filler_rules()], [bad_file])

    sentinel = SourceRecord(
        name="azure-sentinel",
        format="sentinel",
        web_url="https://github.com/Azure/Azure-Sentinel",
        licence="MIT",
        official=True,
        is_sample=sample,
        retrieved_at="2026-11-01T10:00:00Z",
        files_seen=1,
        files_with_rules=1,
        rules=1,
    )
    store.replace_source(sentinel, [sentinel_rule()], [])

    splunk = SourceRecord(name="splunk-security-content", format="splunk", rules=2)
    store.replace_source(splunk, splunk_rules(), [])

    store.replace_links(
        [
            (SENTINEL_KEY, HOSTILE_KEY, "similar", 0.8, "same technique T1078 and table"),
            (HOSTILE_KEY, SENTINEL_KEY, "similar", 0.8, "same technique T1078 and table"),
            (HOSTILE_KEY, "sigma:filler-001", "duplicate", 1.0, "same normalized query"),
        ]
    )
    store.replace_suggestions([(ODD_KEY, "T1003.001", 0.71, "demo-classifier")])


@contextmanager
def filled_client(folder: Path) -> Iterator[TestClient]:
    """Yield a client of the app over a new store in ``folder`` filled by ``fill_store``."""
    store = open_store(folder / "web.db")
    try:
        fill_store(store)
        yield TestClient(create_app(store))
    finally:
        store.close()


# The pages only read, so one filled store serves every test of a module.
@pytest.fixture(scope="module")
def web_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    with filled_client(tmp_path_factory.mktemp("web")) as client:
        yield client


class BrokenStore(Store):
    """A store whose every read fails the way a locked or missing database does."""

    def __init__(self) -> None:
        pass

    def _fail(self, *args: object, **kwargs: object) -> Any:
        raise OperationalError("SELECT", {}, Exception("database is locked"))

    feed = rule = sources = errors = technique_counts = find_rule_keys = _fail

    @property
    def engine(self) -> Any:
        # The facet counter reads the store through its engine.
        return _FailingEngine(self._fail)


class _FailingEngine:
    def __init__(self, fail: Any) -> None:
        self.connect = fail


class CrashingStore(BrokenStore):
    """A store that fails with an error the app does not expect."""

    def _fail(self, *args: object, **kwargs: object) -> Any:
        raise RuntimeError("unexpected")

    feed = rule = sources = errors = technique_counts = find_rule_keys = _fail


def test_api_unknown_path_json_404(web_client: TestClient) -> None:
    response = web_client.get("/api/nothing-here")

    assert response.status_code == 404
    assert response.json() == {"error": {"status": 404, "message": "no page at /api/nothing-here"}}


def test_api_wrong_method_json_405(web_client: TestClient) -> None:
    response = web_client.post("/api/rules")

    assert response.status_code == 405
    assert response.json()["error"]["status"] == 405


def test_api_invalid_parameter_json_422(web_client: TestClient) -> None:
    response = web_client.get("/api/rules", params={"per_page": "0"})

    assert response.status_code == 422
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["status"] == 422
    assert "per_page" in body["error"]["message"]


def test_page_invalid_parameter_html_422(web_client: TestClient) -> None:
    response = web_client.get("/", params={"severity": "extreme"})

    assert response.status_code == 422
    assert response.headers["content-type"].startswith("text/html")
    assert "severity" in response.text


def test_unknown_page_html_404(web_client: TestClient) -> None:
    response = web_client.get("/no-such-page")

    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")
    assert "no page at /no-such-page" in response.text


def test_store_failure_json_503() -> None:
    client = TestClient(create_app(BrokenStore()))

    response = client.get("/api/rules")

    assert response.status_code == 503
    assert response.json()["error"]["status"] == 503
    assert "store could not be read" in response.json()["error"]["message"]


def test_store_failure_html_503() -> None:
    client = TestClient(create_app(BrokenStore()))

    response = client.get("/")

    assert response.status_code == 503
    assert "store could not be read" in response.text


def test_unexpected_error_json_500() -> None:
    client = TestClient(create_app(CrashingStore()), raise_server_exceptions=False)

    response = client.get("/api/sources")

    assert response.status_code == 500
    assert response.json() == {
        "error": {"status": 500, "message": "internal error; the server log has the details"}
    }


def test_security_headers_set(web_client: TestClient) -> None:
    response = web_client.get("/")

    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy
    assert "default-src 'self'" in policy
    assert response.headers["x-content-type-options"] == "nosniff"


def test_static_stylesheet_served(web_client: TestClient) -> None:
    response = web_client.get("/static/style.css")

    assert response.status_code == 200
    assert "prefers-color-scheme: dark" in response.text


def test_highlight_stylesheet_served(web_client: TestClient) -> None:
    response = web_client.get("/highlight.css")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/css")
    assert ".highlight" in response.text


def test_pages_reference_no_other_host(web_client: TestClient) -> None:
    for path in ("/", "/coverage", "/sources", "/rules/" + HOSTILE_KEY):
        text = web_client.get(path).text
        assert "cdn." not in text, path
        assert '<script src="http' not in text, path
        assert '<link rel="stylesheet" href="http' not in text, path


def test_openapi_lists_api_routes_only(web_client: TestClient) -> None:
    paths = set(web_client.get("/api/openapi.json").json()["paths"])

    assert paths == {
        "/api/rules",
        "/api/rules/{key}",
        "/api/sources",
        "/api/coverage",
        "/api/export/{format}",
        "/coverage/navigator.json",
        "/feed.atom",
    }


def test_openapi_error_schema_is_shared(web_client: TestClient) -> None:
    spec = web_client.get("/api/openapi.json").json()
    responses = spec["paths"]["/api/rules"]["get"]["responses"]

    error_ref = {"$ref": "#/components/schemas/ErrorResponse"}
    for status in ("422", "500", "503"):
        assert responses[status]["content"]["application/json"]["schema"] == error_ref, status


def test_openapi_rule_not_found_documented(web_client: TestClient) -> None:
    spec = web_client.get("/api/openapi.json").json()
    responses = spec["paths"]["/api/rules/{key}"]["get"]["responses"]

    schema = responses["404"]["content"]["application/json"]["schema"]
    assert schema == {"$ref": "#/components/schemas/ErrorResponse"}


def test_openapi_export_media_types(web_client: TestClient) -> None:
    spec = web_client.get("/api/openapi.json").json()
    content = spec["paths"]["/api/export/{format}"]["get"]["responses"]["200"]["content"]

    assert "text/csv" in content
    assert "application/x-ndjson" in content


def test_download_error_is_json(web_client: TestClient) -> None:
    response = web_client.get("/coverage/navigator.json", params={"kind": "alert"})

    assert response.status_code == 422
    assert response.json()["error"]["status"] == 422


def test_openapi_severity_enum(web_client: TestClient) -> None:
    spec = web_client.get("/api/openapi.json").json()
    parameters = spec["paths"]["/api/rules"]["get"]["parameters"]
    severity = next(p for p in parameters if p["name"] == "severity")

    items = severity["schema"]["anyOf"][0]["items"]
    assert items["enum"] == ["informational", "low", "medium", "high", "critical"]


def test_docs_pages_disabled(web_client: TestClient) -> None:
    # FastAPI's docs pages load scripts from a CDN, which the pages must not do.
    assert web_client.get("/docs").status_code == 404
    assert web_client.get("/redoc").status_code == 404


class _AnchorParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.anchors: list[tuple[str, str]] = []
        self._href: str | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self._href = dict(attrs).get("href") or ""
            self._text = []

    def handle_data(self, data: str) -> None:
        if self._href is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._href is not None:
            self.anchors.append((self._href, " ".join("".join(self._text).split())))
            self._href = None


def anchors(html: str) -> list[tuple[str, str]]:
    """Return (href, text) of every link in a page, with entities decoded."""
    parser = _AnchorParser()
    parser.feed(html)
    return parser.anchors


def href_of(html: str, text: str) -> str:
    """Return the href of the first link whose text is ``text``."""
    return next(href for href, label in anchors(html) if label == text)
