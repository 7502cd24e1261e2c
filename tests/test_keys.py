"""Tests for termrooms.storage.keys: the signing-key file is private, atomic, and rotates safely."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from support import third_party_imports
from termrooms.domain.tokens import AccessTokens, KeyRing, TokenError
from termrooms.storage import keys
from termrooms.storage.keys import KeyFileError, load_or_create_key_ring, read_key_ring, rotate_key

NOW = 1_750_000_000.0
TOKENS = AccessTokens(issuer="https://chat.example", audience="termrooms")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    return tmp_path / "data" / "signing-keys.json"


def write_document(path: Path, document: Any, file_mode: int = 0o600) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(document if isinstance(document, str) else json.dumps(document))
    path.chmod(file_mode)


def valid_document() -> dict[str, Any]:
    return {
        "version": 1,
        "active": "k2",
        "keys": [
            {"kid": "k1", "secret": "A" * 43, "created_at": NOW - 100, "retired_at": NOW - 10},
            {"kid": "k2", "secret": "B" * 43, "created_at": NOW - 10, "retired_at": None},
        ],
    }


# -- creation --------------------------------------------------------------------------


def test_first_load_creates_an_owner_only_file_in_an_owner_only_directory(key_file: Path) -> None:
    old_umask = os.umask(0o022)  # the usual umask would leave 0755 / 0644
    try:
        ring = load_or_create_key_ring(key_file, NOW)
    finally:
        os.umask(old_umask)
    assert mode(key_file) == 0o600
    assert mode(key_file.parent) == 0o700
    assert len(ring.keys) == 1 and ring.active.created_at == NOW and ring.active.retired_at is None
    assert leftovers(key_file.parent) == []


def test_file_has_the_documented_shape(key_file: Path) -> None:
    ring = load_or_create_key_ring(key_file, NOW)
    document = json.loads(key_file.read_text())
    assert document == {
        "version": 1,
        "active": ring.active_kid,
        "keys": [
            {
                "kid": ring.active_kid,
                "secret": document["keys"][0]["secret"],
                "created_at": NOW,
                "retired_at": None,
            }
        ],
    }
    assert set(document["keys"][0]["secret"]) <= set(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    )


def test_existing_directory_mode_is_left_alone(tmp_path: Path) -> None:
    tmp_path.chmod(0o750)
    load_or_create_key_ring(tmp_path / "keys.json", NOW)
    assert mode(tmp_path) == 0o750


def test_second_load_returns_the_same_ring(key_file: Path) -> None:
    first = load_or_create_key_ring(key_file, NOW)
    assert load_or_create_key_ring(key_file, NOW + 60) == first
    assert read_key_ring(key_file) == first


def test_concurrent_creation_in_threads_yields_one_ring(tmp_path: Path) -> None:
    for round in range(20):  # the race window is small; give it many chances
        key_file = tmp_path / str(round) / "data" / "signing-keys.json"
        start = threading.Barrier(8)
        rings: list[KeyRing] = []
        failures: list[BaseException] = []

        def create(key_file: Path, start: threading.Barrier, rings: list, failures: list) -> None:
            start.wait()
            try:
                rings.append(load_or_create_key_ring(key_file, NOW))
            except BaseException as e:  # pragma: no cover - reported below
                failures.append(e)

        threads = [
            threading.Thread(target=create, args=(key_file, start, rings, failures))
            for _ in range(8)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert failures == []
        assert len(rings) == 8
        assert all(ring == rings[0] for ring in rings)
        assert read_key_ring(key_file) == rings[0]
        assert leftovers(key_file.parent) == []


def test_concurrent_creation_in_processes_yields_one_ring(key_file: Path) -> None:
    program = (
        "import sys; from pathlib import Path; from termrooms.storage.keys import load_or_create_key_ring; "
        "print(load_or_create_key_ring(Path(sys.argv[1]), 1.0).active_kid)"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    children = [
        subprocess.Popen(
            [sys.executable, "-c", program, str(key_file)],
            stdout=subprocess.PIPE,
            env=env,
            text=True,
        )
        for _ in range(4)
    ]
    kids = {child.communicate(timeout=60)[0].strip() for child in children}
    assert all(child.returncode == 0 for child in children)
    assert kids == {read_key_ring(key_file).active_kid}


def test_loser_of_the_creation_race_reads_the_winners_file(
    key_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Deterministic version of the race: another process creates the file after this one
    # found it missing but before it links its own into place.
    real_link = os.link
    winner: list[KeyRing] = []

    def link_after_a_rival(src: Any, dst: Any) -> None:
        monkeypatch.setattr(keys.os, "link", real_link)
        winner.append(load_or_create_key_ring(key_file, NOW))
        real_link(src, dst)

    monkeypatch.setattr(keys.os, "link", link_after_a_rival)
    loser = load_or_create_key_ring(key_file, NOW)
    assert loser == winner[0] == read_key_ring(key_file)
    assert leftovers(key_file.parent) == []


def test_read_does_not_create(key_file: Path) -> None:
    with pytest.raises(KeyFileError, match="does not exist"):
        read_key_ring(key_file)
    assert not key_file.parent.exists()


# -- refusals --------------------------------------------------------------------------


@pytest.mark.parametrize("file_mode", [0o644, 0o604, 0o606, 0o602])
def test_file_open_to_other_users_is_refused_with_the_fix(key_file: Path, file_mode: int) -> None:
    load_or_create_key_ring(key_file, NOW)
    key_file.chmod(file_mode)
    for load in (lambda: load_or_create_key_ring(key_file, NOW), lambda: read_key_ring(key_file)):
        with pytest.raises(KeyFileError) as caught:
            load()
        message = str(caught.value)
        assert str(key_file) in message
        assert f"chmod 600 {key_file}" in message
        assert f"{file_mode:04o}" in message
    assert mode(key_file) == file_mode  # refused, not silently "fixed" or replaced


def test_group_readable_file_is_accepted(key_file: Path) -> None:
    # Operators may share the file with a group on purpose; only "other" is refused.
    ring = load_or_create_key_ring(key_file, NOW)
    key_file.chmod(0o640)
    assert read_key_ring(key_file) == ring


def test_valid_hand_written_file_loads(key_file: Path) -> None:
    write_document(key_file, valid_document())
    ring = load_or_create_key_ring(key_file, NOW)
    assert ring.active_kid == "k2"
    assert ring.get("k1").retired_at == NOW - 10
    assert ring.get("k2").secret == b"\x04\x10\x41" * 10 + b"\x04\x10"


def test_padded_base64url_secret_is_accepted(key_file: Path) -> None:
    document = valid_document()
    document["keys"][1]["secret"] = "B" * 43 + "="
    write_document(key_file, document)
    assert len(read_key_ring(key_file).active.secret) == 32


def _with(change: Any) -> str:
    document = valid_document()
    change(document)
    return json.dumps(document)


@pytest.mark.parametrize(
    "content",
    [
        "",
        "not json",
        "[]",
        '{"version": 1, "active": "k2", "keys": [',
        "\xff",
        _with(lambda d: d.update(version=2)),
        _with(lambda d: d.update(version=True)),
        _with(lambda d: d.pop("version")),
        _with(lambda d: d.update(active="k3")),
        _with(lambda d: d.update(active="k1")),  # a retired key cannot be active
        _with(lambda d: d.update(active=None)),
        _with(lambda d: d.update(keys=[])),
        _with(lambda d: d.update(keys={})),
        _with(lambda d: d["keys"][0].update(kid="k2")),  # duplicate kid
        _with(lambda d: d["keys"][0].update(kid="bad kid")),
        _with(lambda d: d["keys"][0].update(kid=1)),
        _with(lambda d: d["keys"][0].pop("retired_at")),
        _with(lambda d: d["keys"][0].update(extra=1)),
        _with(lambda d: d["keys"][0].update(secret="c2hvcnQ")),  # "short"
        _with(lambda d: d["keys"][0].update(secret="A" * 42 + "+/")),  # base64, not base64url
        _with(lambda d: d["keys"][0].update(secret="A" * 43 + "!")),
        _with(lambda d: d["keys"][0].update(secret=None)),
        _with(lambda d: d["keys"][0].update(created_at="yesterday")),
        _with(lambda d: d["keys"][0].update(created_at=True)),
        _with(lambda d: d["keys"][0].update(retired_at="now")),
        json.dumps(valid_document()).replace(str(NOW - 100), "NaN"),
        json.dumps(valid_document()).replace(str(NOW - 100), "Infinity"),
        json.dumps(valid_document()).replace(str(NOW - 100), "1e999"),  # parses as inf
    ],
    ids=repr,
)
def test_malformed_file_is_refused_naming_the_path(key_file: Path, content: str) -> None:
    write_document(key_file, content)
    with pytest.raises(KeyFileError) as caught:
        load_or_create_key_ring(key_file, NOW)
    assert str(key_file) in str(caught.value)
    assert "malformed" in str(caught.value)
    assert key_file.read_text() == content  # never overwritten
    assert isinstance(caught.value, ValueError)


def test_directory_in_place_of_the_file_is_refused(key_file: Path) -> None:
    key_file.mkdir(parents=True)
    with pytest.raises(KeyFileError) as caught:
        load_or_create_key_ring(key_file, NOW)
    assert f"signing key file {key_file} is not a regular file" in str(caught.value)


# -- rotation --------------------------------------------------------------------------


def test_rotate_adds_an_active_key_and_keeps_the_old_one(key_file: Path) -> None:
    before = load_or_create_key_ring(key_file, NOW)
    after = rotate_key(key_file, NOW + 100, keep_retired_for=3600)
    assert after.active_kid != before.active_kid
    assert after.active.created_at == NOW + 100 and after.active.retired_at is None
    old = after.get(before.active_kid)
    assert old is not None and old.secret == before.active.secret and old.retired_at == NOW + 100
    assert read_key_ring(key_file) == after
    assert load_or_create_key_ring(key_file, NOW + 200) == after
    assert mode(key_file) == 0o600
    assert leftovers(key_file.parent) == []


def test_tokens_signed_before_rotation_verify_until_they_expire(key_file: Path) -> None:
    ring = load_or_create_key_ring(key_file, NOW)
    token = TOKENS.issue(ring, 42, "family", NOW)
    reloaded = rotate_key(key_file, NOW + 10, keep_retired_for=905)
    assert TOKENS.verify(read_key_ring(key_file), token, NOW + 600).user_id == 42
    new_token = TOKENS.issue(reloaded, 42, "family", NOW + 10)
    assert TOKENS.verify(reloaded, new_token, NOW + 600).user_id == 42
    with pytest.raises(TokenError) as caught:
        TOKENS.verify(reloaded, token, NOW + 905)
    assert caught.value.error_code == "token_expired"


def test_rotate_prunes_keys_retired_long_ago(key_file: Path) -> None:
    first = load_or_create_key_ring(key_file, NOW)
    second = rotate_key(key_file, NOW + 10, keep_retired_for=1000)
    third = rotate_key(key_file, NOW + 500, keep_retired_for=1000)
    assert [k.kid for k in third.keys] == [first.active_kid, second.active_kid, third.active_kid]
    fourth = rotate_key(key_file, NOW + 1011, keep_retired_for=1000)
    assert [k.kid for k in fourth.keys] == [second.active_kid, third.active_kid, fourth.active_kid]
    assert read_key_ring(key_file) == fourth
    # The dropped key signs nothing that verifies any more.
    token = TOKENS.issue(first, 42, "family", NOW)
    with pytest.raises(TokenError, match="token_invalid"):
        TOKENS.verify(fourth, token, NOW + 300)


def test_rotate_keeps_a_group_readable_file_group_readable(key_file: Path) -> None:
    load_or_create_key_ring(key_file, NOW)
    key_file.chmod(0o640)
    group = key_file.stat().st_gid
    rotate_key(key_file, NOW + 1, keep_retired_for=3600)
    assert mode(key_file) == 0o640 and key_file.stat().st_gid == group


def test_uncreatable_path_is_reported_with_the_path(tmp_path: Path) -> None:
    (tmp_path / "not-a-directory").write_text("")
    key_file = tmp_path / "not-a-directory" / "keys.json"
    with pytest.raises(KeyFileError) as caught:
        load_or_create_key_ring(key_file, NOW)
    assert f"signing key file {key_file}: Not a directory" in str(caught.value)


def test_concurrent_rotations_lose_no_key(key_file: Path) -> None:
    load_or_create_key_ring(key_file, NOW)
    start = threading.Barrier(6)

    def rotate() -> None:
        start.wait()
        rotate_key(key_file, NOW + 1, keep_retired_for=3600)

    threads = [threading.Thread(target=rotate) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ring = read_key_ring(key_file)
    assert len(ring.keys) == 7  # the first key plus one per rotation
    assert sum(key.retired_at is None for key in ring.keys) == 1
    assert leftovers(key_file.parent) == []


def test_rotate_refuses_a_missing_file(key_file: Path) -> None:
    key_file.parent.mkdir()
    with pytest.raises(KeyFileError, match="does not exist"):
        rotate_key(key_file, NOW, keep_retired_for=3600)
    assert not key_file.exists()


def test_rotate_refuses_an_unsafe_file_and_leaves_it_alone(key_file: Path) -> None:
    load_or_create_key_ring(key_file, NOW)
    key_file.chmod(0o644)
    content = key_file.read_text()
    with pytest.raises(KeyFileError, match="chmod 600"):
        rotate_key(key_file, NOW + 1, keep_retired_for=3600)
    assert key_file.read_text() == content


def test_module_imports_no_twisted_or_database() -> None:
    assert third_party_imports(keys) == {"termrooms.domain.tokens"}
