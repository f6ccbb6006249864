"""Tests of saving "my data sources" in a cookie."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from socfeed.web.my_data import local_path
from socfeed.web.params import TABLES_COOKIE, tables_from_cookie
from test_web_app import filled_client


@pytest.fixture
def web_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    with filled_client(tmp_path_factory.mktemp("web")) as client:
        yield client


def save(client: TestClient, **fields: str) -> object:
    return client.post("/my-data-sources", data=fields, follow_redirects=False)


def test_save_sets_cookie(web_client: TestClient) -> None:
    response = save(
        web_client, tables="SecurityEvent\nSigninLogs, AuditLogs", next="/?kind=hunting"
    )

    assert response.status_code == 303
    assert response.headers["location"] == "/?kind=hunting"
    saved = tables_from_cookie(web_client.cookies.get(TABLES_COOKIE))
    assert saved == ["SecurityEvent", "SigninLogs", "AuditLogs"]


def test_cookie_attributes(web_client: TestClient) -> None:
    response = save(web_client, tables="SecurityEvent")

    header = response.headers["set-cookie"].lower()
    assert "httponly" in header
    assert "samesite=lax" in header
    assert "path=/" in header


def test_saved_list_shown_on_feed(web_client: TestClient) -> None:
    save(web_client, tables="SecurityEvent")

    html = web_client.get("/").text

    assert "1 saved: SecurityEvent." in html
    assert ">SecurityEvent</textarea>" in html


def test_clear_removes_cookie(web_client: TestClient) -> None:
    save(web_client, tables="SecurityEvent")

    save(web_client, action="clear")

    assert web_client.cookies.get(TABLES_COOKIE) is None


def test_too_long_list_rejected(web_client: TestClient) -> None:
    names = "\n".join(f"Custom_Table_{number:04d}_CL" for number in range(250))

    response = save(web_client, tables=names)

    assert response.status_code == 422
    assert "more than the 3800 a cookie can keep" in response.text


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/?q=x", "/?q=x"),
        ("/coverage#gaps", "/coverage#gaps"),
        ("https://example.org/", "/"),
        ("//example.org/", "/"),
        ("/\\example.org", "/"),
        ("javascript:alert(1)", "/"),
        ("", "/"),
    ],
)
def test_redirect_stays_local(target: str, expected: str) -> None:
    assert local_path(target) == expected
