"""Tests of the sources page and /api/sources."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from socfeed.store import Store
from socfeed.web import create_app
from test_web_app import filled_client


@pytest.fixture(scope="module")
def web_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    with filled_client(tmp_path_factory.mktemp("web")) as client:
        yield client


def test_api_sources_numbers(web_client: TestClient) -> None:
    sources = {item["name"]: item for item in web_client.get("/api/sources").json()["sources"]}

    assert sources["sigma"]["files_seen"] == 70
    assert sources["sigma"]["files_failed"] == 1
    assert sources["sigma"]["rules"] == 61
    assert sources["splunk-security-content"]["duplicates"] == 1
    assert sources["azure-sentinel"]["is_sample"] is True


def test_api_sources_errors(web_client: TestClient) -> None:
    errors = web_client.get("/api/sources").json()["errors"]

    assert errors == [
        {
            "source": "sigma",
            "path": "rules/bad.yml",
            "line": 12,
            "column": 3,
            "reason": "found a tab character; replace it with spaces",
            "location": "sigma:rules/bad.yml:12:3",
        }
    ]


def test_page_table_row(web_client: TestClient) -> None:
    html = web_client.get("/sources").text
    row = html.split('<a href="/?source=sigma">sigma</a>', 1)[1].split("</tr>", 1)[0]

    cells = [cell.split("</td>", 1)[0] for cell in row.split('<td class="num">')[1:]]
    assert cells[:5] == ["70", "61", "61", '<a href="#errors-sigma">1</a>', "0"]
    assert "<code>0123456789ab</code>" in row
    assert "2026-11-01T10:00:00Z" in row
    assert "live repository" in row


def test_page_marks_sample(web_client: TestClient) -> None:
    html = web_client.get("/sources").text
    row = html.split('<a href="/?source=azure-sentinel">azure-sentinel</a>', 1)[1]

    assert "shipped sample" in row.split("</tr>", 1)[0]


def test_page_commit_unknown(web_client: TestClient) -> None:
    html = web_client.get("/sources").text
    row = html.split(">splunk-security-content</a>", 1)[1].split("</tr>", 1)[0]

    assert "<code>unknown</code>" in row


def test_page_lists_errors(web_client: TestClient) -> None:
    html = web_client.get("/sources").text

    assert (
        "<code>sigma:rules/bad.yml:12:3</code> found a tab character; replace it with spaces"
        in html
    )


def test_page_without_sources(store: Store) -> None:
    html = TestClient(create_app(store)).get("/sources").text

    assert "No source has been ingested yet." in html
    assert "No parse errors." in html
