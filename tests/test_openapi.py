"""Check the JSON API against its own OpenAPI document with schemathesis.

Each operation gets a bounded number of generated requests against the app served on a
loopback port; every response must be free of server errors and conform to the
documented status codes, content types, headers and schemas.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from hypothesis import HealthCheck, given, settings

from socfeed.store import open_store
from socfeed.web import create_app
from test_web_app import fill_store

schemathesis = pytest.importorskip("schemathesis")

EXAMPLES_PER_OPERATION = 25


@pytest.fixture(scope="module")
def served_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Serve the app over a small filled store on a free loopback port; yield its URL."""
    store = open_store(Path(tmp_path_factory.mktemp("openapi")) / "web.db")
    fill_store(store)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(create_app(store), host="127.0.0.1", port=port, log_level="error")
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "uvicorn did not start within 10 s"

    yield f"http://127.0.0.1:{port}"

    server.should_exit = True
    thread.join(timeout=10)
    listener.close()
    store.close()


@pytest.fixture(scope="module")
def api_schema(served_url: str) -> Any:
    return schemathesis.openapi.from_url(served_url + "/api/openapi.json")


# Every operation of the OpenAPI document; test_every_operation_listed keeps this complete.
OPERATIONS = [
    ("/api/rules", "GET"),
    ("/api/rules/{key}", "GET"),
    ("/api/coverage", "GET"),
    ("/api/sources", "GET"),
    ("/api/export/{format}", "GET"),
    ("/coverage/navigator.json", "GET"),
    ("/feed.atom", "GET"),
]


@pytest.mark.parametrize(("path", "method"), OPERATIONS)
def test_operation_conforms(api_schema: Any, path: str, method: str) -> None:
    operation = api_schema[path][method]

    @given(case=operation.as_strategy())
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    def check(case: Any) -> None:
        # call_and_validate runs the default checks: no 5xx, a documented status code,
        # content type and headers, and a body that matches the response schema.
        case.call_and_validate()

    check()


def test_every_operation_listed(api_schema: Any) -> None:
    listed = {
        (result.ok().path, result.ok().method.upper()) for result in api_schema.get_all_operations()
    }

    assert listed == set(OPERATIONS)
