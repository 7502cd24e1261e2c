"""
The bundled web client (``termrooms/client/``), read once at start-up into memory: each
file's bytes, content type and strong ETag, and one bundle version that names them all,
so asset URLs (``/assets/<version>/...``) can be cached forever and still change with
every release. There is no build step: the files are served as they are shipped, except
``index.html``, whose ``{{assets}}`` placeholders become ``/assets/<version>``.

Pure logic: no Twisted, no database; the HTTP layer (``termrooms.transport.http.client``) serves it.
"""

from __future__ import annotations

import hashlib
import posixpath
from importlib.resources import files
from importlib.resources.abc import Traversable
from typing import Mapping

import attrs

INDEX = "index.html"
ASSETS_PLACEHOLDER = b"{{assets}}"
ASSETS_PREFIX = "/assets"
VERSION_LENGTH = 12  # hex digits: enough to never collide between two releases

CONTENT_TYPES: Mapping[str, str] = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".json": "application/json",
    ".webmanifest": "application/manifest+json",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".woff2": "font/woff2",
}
DEFAULT_CONTENT_TYPE = "application/octet-stream"


@attrs.frozen
class Asset:
    """One file as served: its bytes, their type, and the ETag that names them."""

    body: bytes
    content_type: str
    etag: str  # quoted, strong: '"<hex>"'


@attrs.frozen
class ClientBundle:
    """The whole client: the rendered page and every other file by its relative path."""

    version: str
    index: Asset
    assets: Mapping[str, Asset]

    def asset(self, version: str, path: str) -> Asset | None:
        """The file at ``path`` of bundle ``version``, or None for anything else (an old
        version, an unknown file, ``..``): only precomputed paths are ever answered."""
        if version != self.version:
            return None
        return self.assets.get(path)


def assets_url(version: str) -> str:
    """What ``{{assets}}`` becomes: the prefix of every asset URL of a bundle version."""
    return f"{ASSETS_PREFIX}/{version}"


def content_type_of(path: str) -> str:
    return CONTENT_TYPES.get(posixpath.splitext(path)[1].lower(), DEFAULT_CONTENT_TYPE)


def strong_etag(body: bytes) -> str:
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """Whether an ``If-None-Match`` header names ``etag`` (or ``*``): the client's copy is
    current. Weak comparison, as RFC 9110 prescribes for If-None-Match."""
    if not if_none_match:
        return False
    for candidate in if_none_match.split(","):
        candidate = candidate.strip()
        if candidate == "*" or candidate.removeprefix("W/") == etag:
            return True
    return False


def _files(root: Traversable, prefix: str = "") -> dict[str, bytes]:
    found: dict[str, bytes] = {}
    for entry in root.iterdir():
        path = prefix + entry.name
        if entry.is_dir():
            found.update(_files(entry, path + "/"))
        elif entry.is_file():
            found[path] = entry.read_bytes()
    return found


def bundle_version(contents: Mapping[str, bytes]) -> str:
    """A short hash over every file's path and bytes: any change makes a new version."""
    digest = hashlib.sha256()
    for path in sorted(contents):
        body = contents[path]
        digest.update(b"%d:%s\0%d:" % (len(path.encode()), path.encode(), len(body)))
        digest.update(body)
    return digest.hexdigest()[:VERSION_LENGTH]


def load_bundle(root: Traversable) -> ClientBundle:
    """Read every file under ``root`` (a directory holding ``index.html``) once."""
    contents = _files(root)
    if INDEX not in contents:
        raise FileNotFoundError(f"the web client has no {INDEX}")
    version = bundle_version(contents)
    page = contents.pop(INDEX).replace(ASSETS_PLACEHOLDER, assets_url(version).encode())
    assets = {
        path: Asset(body, content_type_of(path), strong_etag(body))
        for path, body in contents.items()
    }
    return ClientBundle(version, Asset(page, CONTENT_TYPES[".html"], strong_etag(page)), assets)


def installed_bundle() -> ClientBundle:
    """The client shipped inside the installed package."""
    return load_bundle(files("termrooms").joinpath("client"))
