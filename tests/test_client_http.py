"""The bundled web client over real HTTP: the page, its versioned assets, caching, headers."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import pytest_twisted
import treq
from twisted.internet import reactor
from twisted.logger import globalLogPublisher
from twisted.web.client import Agent

from support import config_for, start, third_party_imports
from termrooms.domain.ratelimit import RateLimit
from termrooms.transport.http import assets
from termrooms.transport.http.assets import (
    ClientBundle,
    etag_matches,
    installed_bundle,
    load_bundle,
)
from termrooms.transport.http.client import CONTENT_SECURITY_POLICY

SECURITY_HEADERS = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
}
IMMUTABLE = "public, max-age=31536000, immutable"
CLIENT_SOURCE = Path(__file__).resolve().parent.parent / "termrooms" / "client"


@pytest_twisted.async_yield_fixture
async def running(fresh_migrated_database_url, tmp_path):
    server = await start(
        config_for(fresh_migrated_database_url, tmp_path, http_rate_limit=RateLimit(2, 60.0))
    )
    yield server
    await server.stop()


def bundle_of(running) -> ClientBundle:
    return running.server.get_client_bundle()


async def fetch(url: str, method: str = "GET", **kwargs) -> tuple[int, bytes, dict]:
    response = await treq.request(method, url, **kwargs)
    body = await response.content()
    headers = {k.decode().lower(): v[-1].decode() for k, v in response.headers.getAllRawHeaders()}
    return response.code, body, headers


async def fetch_raw(url: bytes) -> tuple[int, bytes]:
    """A request for exactly these bytes: no client-side ``..`` normalising."""
    response = await Agent(reactor).request(b"GET", url)
    return response.code, await treq.content(response)


def assert_security_headers(headers: dict) -> None:
    assert {name: headers.get(name) for name in SECURITY_HEADERS} == SECURITY_HEADERS


def asset_urls(page: bytes) -> list[str]:
    return re.findall(r'(?:href|src)="([^"]+)"', page.decode())


@pytest_twisted.ensureDeferred
async def test_page_names_versioned_assets_that_all_resolve_with_their_types(running):
    status, page, headers = await fetch(running.url + "/")
    assert status == 200
    assert headers["content-type"] == "text/html; charset=utf-8"
    assert b"{{assets}}" not in page
    version = bundle_of(running).version
    urls = asset_urls(page)
    assert urls and all(url.startswith(f"/assets/{version}/") for url in urls)
    types = {}
    for url in urls:
        status, body, headers = await fetch(running.url + url)
        assert status == 200, url
        assert body == bundle_of(running).assets[url.split("/", 3)[3]].body
        types[url.rsplit(".", 1)[1]] = headers["content-type"]
    assert types == {
        "svg": "image/svg+xml",
        "css": "text/css; charset=utf-8",
        "js": "text/javascript; charset=utf-8",
    }


@pytest_twisted.ensureDeferred
async def test_every_shipped_file_is_served_under_the_bundle_version(running):
    bundle = bundle_of(running)
    shipped = {
        p.relative_to(CLIENT_SOURCE).as_posix()
        for p in CLIENT_SOURCE.rglob("*")
        if p.is_file() and p.name != "index.html"
    }
    assert set(bundle.assets) == shipped
    for path in shipped:
        status, _, headers = await fetch(f"{running.url}/assets/{bundle.version}/{path}")
        assert (status, headers["cache-control"]) == (200, IMMUTABLE), path


@pytest_twisted.ensureDeferred
async def test_page_is_revalidated_and_answers_304_to_its_etag(running):
    status, page, headers = await fetch(running.url + "/")
    assert headers["cache-control"] == "no-cache"
    etag = headers["etag"]
    assert etag.startswith('"') and not etag.startswith("W/")
    assert_security_headers(headers)

    status, body, headers = await fetch(running.url + "/", headers={"If-None-Match": etag})
    assert (status, body) == (304, b"")
    assert headers["etag"] == etag and headers["cache-control"] == "no-cache"
    status, body, _ = await fetch(running.url + "/", headers={"If-None-Match": '"stale"'})
    assert (status, body) == (200, page)


@pytest_twisted.ensureDeferred
async def test_assets_are_immutable_and_answer_304_to_their_etag(running):
    bundle = bundle_of(running)
    url = f"{running.url}/assets/{bundle.version}/app.css"
    status, body, headers = await fetch(url)
    assert status == 200 and body == bundle.assets["app.css"].body
    assert headers["cache-control"] == IMMUTABLE
    assert_security_headers(headers)
    etag = headers["etag"]

    status, body, headers = await fetch(url, headers={"If-None-Match": f'"other", {etag}'})
    assert (status, body) == (304, b"")
    assert headers["etag"] == etag and headers["cache-control"] == IMMUTABLE
    other = f"{running.url}/assets/{bundle.version}/favicon.svg"
    assert (await fetch(other, headers={"If-None-Match": etag}))[0] == 200


@pytest_twisted.ensureDeferred
async def test_head_of_page_and_asset_has_the_headers_and_no_body(running):
    version = bundle_of(running).version
    for path in ("/", f"/assets/{version}/js/main.js"):
        status, body, headers = await fetch(running.url + path, method="HEAD")
        assert (status, body) == (200, b""), path
        assert headers["etag"] and headers["content-type"].startswith("text/")


@pytest.mark.parametrize(
    "path",
    [
        "/assets/0123456789ab/app.css",  # another version
        "/assets/{v}/nothing.js",
        "/assets/{v}",
        "/assets/{v}/",
        "/assets/{v}/js",
        "/assets/{v}/index.html",  # the page lives at / only, rendered
        "/assets/{v}/../setup.cfg",
        "/assets/{v}/js/../app.css",  # a real file, but not by that name
        "/assets/{v}/%2e%2e/%2e%2e/setup.cfg",
        "/assets/{v}/..%2fsetup.cfg",
        "/assets/{v}/%2fetc%2fpasswd",
    ],
)
@pytest_twisted.ensureDeferred
async def test_anything_but_a_bundled_file_is_404_not_found(running, path):
    url = running.url + path.format(v=bundle_of(running).version)
    status, body = await fetch_raw(url.encode())
    assert status == 404
    assert json.loads(body) == {"detail": "No such resource.", "error_code": "not_found"}


@pytest_twisted.ensureDeferred
async def test_api_answers_carry_nosniff_too(running):
    status, _, headers = await fetch(running.url + "/api/rooms/nowhere")
    assert status == 404
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["content-type"] == "application/json"


@pytest_twisted.ensureDeferred
async def test_page_and_assets_are_not_counted_against_the_address_limit(running):
    version = bundle_of(running).version
    for _ in range(5):
        assert (await fetch(running.url + "/"))[0] == 200
        assert (await fetch(f"{running.url}/assets/{version}/app.css"))[0] == 200
    # The API still is: a burst of 2, then 429.
    statuses = [(await fetch(running.url + "/api/rooms/nowhere"))[0] for _ in range(3)]
    assert statuses == [404, 404, 429]


@pytest_twisted.ensureDeferred
async def test_access_log_route_is_a_bounded_template(running):
    events: list[dict] = []
    globalLogPublisher.addObserver(events.append)
    try:
        version = bundle_of(running).version
        await fetch(running.url + "/")
        await fetch(f"{running.url}/assets/{version}/js/main.js")
        await fetch(f"{running.url}/assets/{version}/missing.js")
    finally:
        globalLogPublisher.removeObserver(events.append)
    access = [e for e in events if e.get("log_namespace") == "termrooms.access"]
    assert [(e["route"], e["status"]) for e in access] == [
        ("/", 200),
        ("/assets/<path>", 200),
        ("/assets/<path>", 404),
    ]


# --------------------------------------------------------------------------- the pure module


def write_client(root: Path, files: dict[str, bytes]) -> Path:
    for path, body in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(body)
    return root


CLIENT = {
    "index.html": b'<link href="{{assets}}/app.css"><script src="{{assets}}/js/a.js"></script>',
    "app.css": b"body{}",
    "js/a.js": b"export {};",
    "favicon.svg": b"<svg/>",
}


def test_bundle_version_changes_with_any_file_and_renders_the_page(tmp_path):
    first = load_bundle(write_client(tmp_path / "one", CLIENT))
    same = load_bundle(write_client(tmp_path / "two", CLIENT))
    assert first.version == same.version and len(first.version) == 12
    assert first.index.body == (
        f'<link href="/assets/{first.version}/app.css">'
        f'<script src="/assets/{first.version}/js/a.js"></script>'
    ).encode()
    assert set(first.assets) == {"app.css", "js/a.js", "favicon.svg"}
    assert first.assets["js/a.js"].content_type == "text/javascript; charset=utf-8"
    assert first.asset(first.version, "js/a.js") is first.assets["js/a.js"]
    assert first.asset("000000000000", "js/a.js") is None

    changed = load_bundle(write_client(tmp_path / "three", {**CLIENT, "js/a.js": b"export {1};"}))
    assert changed.version != first.version
    assert changed.assets["js/a.js"].etag != first.assets["js/a.js"].etag
    assert changed.assets["app.css"].etag == first.assets["app.css"].etag
    renamed = {**CLIENT, "js/b.js": CLIENT["js/a.js"]}
    del renamed["js/a.js"]
    assert load_bundle(write_client(tmp_path / "four", renamed)).version != first.version


def test_a_client_without_index_html_is_refused(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_bundle(write_client(tmp_path, {"app.css": b""}))


def test_etag_matching_takes_lists_weak_tags_and_star():
    assert etag_matches('"a"', '"a"')
    assert etag_matches('"x", W/"a"', '"a"')
    assert etag_matches("*", '"a"')
    assert not etag_matches('"ab"', '"a"')
    assert not etag_matches("", '"a"')


def test_installed_bundle_is_the_source_client_and_the_module_is_pure():
    bundle = installed_bundle()
    assert bundle.assets["js/main.js"].body == (CLIENT_SOURCE / "js" / "main.js").read_bytes()
    assert third_party_imports(assets) == {"attrs"}
