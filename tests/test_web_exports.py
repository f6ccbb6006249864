"""Tests of the downloads: /api/export/{format}, /coverage/navigator.json and /feed.atom."""

from __future__ import annotations

import csv
import io
import json
import xml.etree.ElementTree as ET
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from socfeed.web import create_app, exports
from test_web_app import (
    FILLER_COUNT,
    HOSTILE_KEY,
    SENTINEL_KEY,
    BrokenStore,
    filled_client,
)

ATOM = "{http://www.w3.org/2005/Atom}"
TOTAL = FILLER_COUNT + 4


@pytest.fixture(scope="module")
def web_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    with filled_client(tmp_path_factory.mktemp("web")) as client:
        yield client


def test_csv_export(web_client: TestClient) -> None:
    response = web_client.get("/api/export/csv", params={"source": "azure-sentinel"})

    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.headers["content-disposition"] == 'attachment; filename="socfeed-rules.csv"'
    assert [row["key"] for row in rows] == [SENTINEL_KEY]


def test_jsonl_export_every_rule(web_client: TestClient) -> None:
    response = web_client.get("/api/export/jsonl", params={"page": "2", "per_page": "5"})

    lines = response.text.splitlines()
    assert response.headers["content-type"] == "application/x-ndjson"
    # Page and page size belong to the feed's view, not to the export.
    assert len(lines) == TOTAL
    assert json.loads(lines[0])["key"] == HOSTILE_KEY


def test_stix_export(web_client: TestClient) -> None:
    response = web_client.get("/api/export/stix", params={"technique": "T1059.001"})

    bundle = response.json()
    assert response.headers["content-type"].startswith("application/stix+json")
    assert bundle["type"] == "bundle"
    assert response.headers["content-disposition"].endswith('filename="socfeed-rules.stix.json"')


def test_navigator_export(web_client: TestClient) -> None:
    response = web_client.get("/api/export/navigator", params={"source": "azure-sentinel"})

    layer = response.json()
    assert {entry["techniqueID"] for entry in layer["techniques"]} == {"T1078"}
    assert layer["techniques"][0]["links"][0]["url"].startswith("http://testserver/rules/")


def test_coverage_navigator_download(web_client: TestClient) -> None:
    response = web_client.get("/coverage/navigator.json", params={"kind": "hunting"})

    assert response.status_code == 200
    assert response.headers["content-disposition"] == (
        'attachment; filename="socfeed-navigator-layer.json"'
    )
    assert "kind=hunting" in response.json()["description"]


def test_export_unknown_format_json_422(web_client: TestClient) -> None:
    response = web_client.get("/api/export/pdf")

    assert response.status_code == 422
    assert response.json()["error"]["message"].startswith("invalid request: format:")


def test_export_store_failure_json_503() -> None:
    client = TestClient(create_app(BrokenStore()))

    response = client.get("/api/export/csv")

    assert response.status_code == 503
    assert response.json()["error"]["status"] == 503


def test_atom_feed(web_client: TestClient) -> None:
    response = web_client.get("/feed.atom", params={"source": "azure-sentinel"})

    feed = ET.fromstring(response.content)
    entries = feed.findall(f"{ATOM}entry")
    assert response.headers["content-type"] == "application/atom+xml; charset=utf-8"
    assert "content-disposition" not in response.headers
    assert [entry.findtext(f"{ATOM}title") for entry in entries] == [
        "Rare logon to DemoVendor appliance"
    ]


def test_atom_self_link(web_client: TestClient) -> None:
    response = web_client.get("/feed.atom", params={"kind": "hunting"})

    feed = ET.fromstring(response.content)
    links = {link.get("rel"): link.get("href") for link in feed.findall(f"{ATOM}link")}
    assert links["self"] == "http://testserver/feed.atom?kind=hunting"


def test_export_streams_in_chunks(web_client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(exports, "CHUNK_CHARS", 200)

    identity = {"Accept-Encoding": "identity"}
    with web_client.stream("GET", "/api/export/jsonl", headers=identity) as response:
        chunks = list(response.iter_raw())

    assert len(chunks) > 10
    assert len(b"".join(chunks).splitlines()) == TOTAL
