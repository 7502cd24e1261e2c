"""
``GET /`` and ``GET /assets/<version>/<path>``: the bundled web client, served from the
bundle read at start-up (``termrooms.transport.http.assets``), never from the filesystem per request.

These routes are not rate-limited per address: they are cheap, and behind a proxy every
browser would share one address. They are not in the OpenAPI document, which describes
the API. The page is revalidated on every load (``no-cache``) and names its assets by
bundle version, so the assets themselves are cached for a year.
"""

from __future__ import annotations

from termrooms.domain.errors import ApiError
from termrooms.transport.http.assets import Asset, ClientBundle, etag_matches
from termrooms.transport.http.request import ApiRequest
from termrooms.transport.http.router import Router

PAGE_ROUTE = "/"
ASSET_ROUTE = "/assets/<path>"  # the metrics label of every asset, whatever its path

# No inline script or style anywhere in the client: everything comes from this server.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
CLIENT_HEADERS = {
    b"content-security-policy": CONTENT_SECURITY_POLICY.encode(),
    b"referrer-policy": b"no-referrer",
    b"x-frame-options": b"DENY",
}
PAGE_CACHE = b"no-cache"
ASSET_CACHE = b"public, max-age=31536000, immutable"


def serve_asset(request: ApiRequest, asset: Asset, cache_control: bytes) -> bytes:
    """The file, or an empty 304 when the client's copy has the same ETag."""
    for name, value in CLIENT_HEADERS.items():
        request.setHeader(name, value)
    request.setHeader(b"cache-control", cache_control)
    request.setHeader(b"etag", asset.etag.encode("ascii"))
    if_none_match = request.getHeader(b"if-none-match")
    if if_none_match is not None and etag_matches(if_none_match.decode("latin-1"), asset.etag):
        request.setResponseCode(304)
        return b""
    request.setHeader(b"content-type", asset.content_type.encode("ascii"))
    return asset.body


def register_client_routes(router: Router, bundle: ClientBundle) -> None:
    """The page and its assets, on the router's Klein app but outside its API routes."""
    app = router.app

    @app.route(PAGE_ROUTE, methods=["GET"])
    def client_page(request: ApiRequest) -> bytes:
        request.route = PAGE_ROUTE
        return serve_asset(request, bundle.index, PAGE_CACHE)

    @app.route("/assets/<path:path>", methods=["GET"])
    def client_asset(request: ApiRequest, path: str) -> bytes:
        request.route = ASSET_ROUTE
        version, _, file_path = path.partition("/")
        asset = bundle.asset(version, file_path)
        if asset is None:
            raise ApiError("not_found", "No such resource.")
        return serve_asset(request, asset, ASSET_CACHE)
