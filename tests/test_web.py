"""Every HTTP answer is the contract's: JSON error bodies, request ids, no tracebacks."""

from __future__ import annotations

import ipaddress
import json
from typing import Any

import pytest
import pytest_twisted
import treq
from twisted.internet import reactor
from twisted.logger import globalLogPublisher

from termrooms.domain.errors import ApiError, DatabaseUnavailable, FieldError
from termrooms.transport.http.router import JsonResponse, Router
from termrooms.web import TermroomsSite, forwarded_client


def build_router() -> Router:
    router = Router()

    @router.route(
        "/api/things/<name>", "GET", summary="A thing.", responses={200: {"type": "object"}}
    )
    async def thing(request: Any, name: str) -> dict:
        return {"name": name}

    @router.route("/api/things", "POST", summary="Make a thing.", responses={201: None, 422: None})
    async def make_thing(request: Any) -> JsonResponse:
        raise ApiError(
            "validation_error",
            "name must not be empty",
            validation_errors=(FieldError("name", "must not be empty"),),
        )

    @router.route("/api/broken", "GET", summary="Always fails.", responses={500: None})
    async def broken(request: Any) -> dict:
        raise RuntimeError("secret internals")

    @router.route("/api/needs-database", "GET", summary="Database away.", responses={503: None})
    async def needs_database(request: Any) -> dict:
        raise DatabaseUnavailable("PostgreSQL is not reachable")

    return router


@pytest.fixture
def captured_log():
    events: list[dict] = []
    globalLogPublisher.addObserver(events.append)
    yield events
    globalLogPublisher.removeObserver(events.append)


@pytest_twisted.async_yield_fixture
async def site_url():
    port = reactor.listenTCP(0, TermroomsSite(build_router().app.resource()), interface="127.0.0.1")
    yield f"http://127.0.0.1:{port.getHost().port}"
    await port.stopListening()


async def get_json(method: str, url: str, **kwargs: Any) -> tuple[int, Any, Any]:
    response = await treq.request(method, url, **kwargs)
    body = await response.content()
    assert response.headers.getRawHeaders("content-type") == ["application/json"]
    return response.code, json.loads(body), response.headers


@pytest_twisted.ensureDeferred
async def test_route_with_path_parameter_answers_json(site_url):
    code, body, _ = await get_json("GET", site_url + "/api/things/lamp")
    assert (code, body) == (200, {"name": "lamp"})


@pytest_twisted.ensureDeferred
async def test_unknown_route_is_404_with_the_contract_error_body(site_url):
    code, body, headers = await get_json("GET", site_url + "/no/such/route")
    assert code == 404
    assert body == {"detail": "No such resource.", "error_code": "not_found"}
    assert headers.getRawHeaders("x-request-id")


@pytest_twisted.ensureDeferred
async def test_wrong_method_is_405_with_allow_header_and_error_body(site_url):
    code, body, headers = await get_json("DELETE", site_url + "/api/things/lamp")
    assert code == 405
    assert body["error_code"] == "method_not_allowed"
    assert "GET" in headers.getRawHeaders("allow")[0]


@pytest_twisted.ensureDeferred
async def test_validation_error_is_422_naming_the_field(site_url):
    code, body, _ = await get_json("POST", site_url + "/api/things")
    assert code == 422
    assert body == {
        "detail": "name must not be empty",
        "error_code": "validation_error",
        "validation_errors": [{"field": "name", "message": "must not be empty"}],
    }


@pytest_twisted.ensureDeferred
async def test_handler_exception_is_500_with_traceback_only_in_the_log(site_url, captured_log):
    code, body, headers = await get_json(
        "GET", site_url + "/api/broken", headers={"X-Request-ID": "req-123"}
    )
    assert code == 500
    assert body == {"detail": "Something went wrong on our side.", "error_code": "internal_error"}
    assert "secret internals" not in str(body)
    failures = [e for e in captured_log if e.get("log_failure") is not None]
    assert any(
        "secret internals" in e["log_failure"].getTraceback() and e.get("request_id") == "req-123"
        for e in failures
    )


@pytest_twisted.ensureDeferred
async def test_database_unavailable_is_503_with_retry_after(site_url):
    code, body, headers = await get_json("GET", site_url + "/api/needs-database")
    assert code == 503
    assert body["error_code"] == "unavailable"
    assert headers.getRawHeaders("retry-after") == ["5"]


@pytest_twisted.ensureDeferred
async def test_incoming_request_id_is_kept_and_echoed(site_url):
    response = await treq.get(site_url + "/api/things/x", headers={"X-Request-ID": "abc-42"})
    await response.content()
    assert response.headers.getRawHeaders("x-request-id") == ["abc-42"]


@pytest_twisted.ensureDeferred
async def test_unacceptable_request_id_is_replaced_by_a_fresh_one(site_url):
    response = await treq.get(
        site_url + "/api/things/x", headers={"X-Request-ID": "bad id\u00e9" * 20}
    )
    await response.content()
    (echoed,) = response.headers.getRawHeaders("x-request-id")
    assert len(echoed) == 32 and all(c in "0123456789abcdef" for c in echoed)


@pytest_twisted.ensureDeferred
async def test_access_log_has_request_id_and_status_but_never_the_query_string(
    site_url, captured_log
):
    response = await treq.get(
        site_url + "/api/things/x?token=very-secret-token", headers={"X-Request-ID": "log-1"}
    )
    await response.content()
    access = [e for e in captured_log if e.get("log_namespace") == "termrooms.access"]
    (line,) = [e for e in access if e.get("request_id") == "log-1"]
    assert line["status"] == 200
    assert line["path"] == "/api/things/x"
    assert "very-secret-token" not in repr(line)
    assert line["route"] == "/api/things/<name>" and line["room"] == "x"
    assert line["duration_ms"] >= 0 and line["client"] == "127.0.0.1"
    assert response.headers.getRawHeaders("strict-transport-security") is None  # plain HTTP


@pytest_twisted.ensureDeferred
async def test_access_log_names_the_error_code_of_an_error_answer(site_url, captured_log):
    response = await treq.get(site_url + "/nowhere", headers={"X-Request-ID": "log-2"})
    await response.content()
    access = [e for e in captured_log if e.get("log_namespace") == "termrooms.access"]
    (line,) = [e for e in access if e.get("request_id") == "log-2"]
    assert (line["status"], line["error_code"], line["route"]) == (404, "not_found", "(unmatched)")


TRUSTED = (ipaddress.ip_network("10.0.0.0/8"),)


@pytest.mark.parametrize(
    "peer, forwarded, client",
    [
        ("10.0.0.5", [b"198.51.100.7"], "198.51.100.7"),
        # The proxy appends what it saw; what the client wrote on the left is not believed.
        ("10.0.0.5", [b"1.2.3.4, 198.51.100.7"], "198.51.100.7"),
        ("10.0.0.5", [b"198.51.100.7, 10.0.0.9"], "198.51.100.7"),  # two proxies in a row
        ("10.0.0.5", [b"nonsense"], "10.0.0.5"),
        ("10.0.0.5", [], "10.0.0.5"),
        ("203.0.113.1", [b"198.51.100.7"], "203.0.113.1"),  # not a trusted proxy
    ],
)
def test_forwarded_client_believes_only_trusted_proxies(peer, forwarded, client):
    assert forwarded_client(peer, forwarded, TRUSTED) == client


def test_openapi_document_lists_every_declared_route_with_its_methods():
    router = build_router()
    document = json.loads(router.openapi_json())
    assert document["openapi"] == "3.1.0"
    assert set(document["paths"]) == {
        "/api/things/{name}",
        "/api/things",
        "/api/broken",
        "/api/needs-database",
    }
    thing = document["paths"]["/api/things/{name}"]["get"]
    assert thing["parameters"] == [
        {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
    ]
    error = document["paths"]["/api/things"]["post"]["responses"]["422"]
    assert error["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}

    @router.route("/api/later", "PUT", summary="Added later.", responses={204: None})
    async def later(request: Any) -> JsonResponse:
        return JsonResponse(None, 204)

    assert "/api/later" in json.loads(router.openapi_json())["paths"]
