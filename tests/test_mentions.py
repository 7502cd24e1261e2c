"""Which names a message body writes as mentions (termrooms.domain.mentions), on tricky
text. No network, no database."""

from __future__ import annotations

import pytest

from support import third_party_imports
from termrooms.domain import mentions
from termrooms.domain.mentions import written_names


@pytest.mark.parametrize(
    ("body", "names"),
    [
        ("", ()),
        ("no mentions here", ()),
        ("@bob", ("bob",)),
        ("hi @bob!", ("bob",)),
        ("@bob.", ("bob",)),  # trailing punctuation is not the name's
        ("@bob...", ("bob",)),
        ("@bob_-.", ("bob",)),
        ("ask @bob.smith now", ("bob.smith",)),
        ("@Bob and @BOB and @bob", ("bob",)),  # case-insensitive, each once
        ("@carl then @ada then @carl", ("carl", "ada")),  # order of first appearance
        ("mail x@bob.com", ()),  # an e-mail address names nobody
        ("mail bob@example.org", ()),
        ("(@bob) [@ada], '@carl'", ("bob", "ada", "carl")),
        ("@@bob", ("bob",)),  # the second @ follows a character no username has
        ("a.@bob", ()),  # . can be in a username: not a mention
        ("a-@bob a_@ada", ()),
        ("`@bob` in code", ("bob",)),  # the contract has no exception for code
        ("```\n@ada\n```", ("ada",)),
        ("@bo", ()),  # too short to be a username
        ("@" + "a" * 32, ("a" * 32,)),
        ("@" + "a" * 33, ()),  # too long to be one
        ("@bøb", ()),  # ø ends the run: "b" is too short
        ("@bobø", ("bob",)),
        ("@", ()),
        ("@ bob", ()),
        ("@...", ()),
        ("café@bob", ("bob",)),  # é cannot be in a username
        ("émile@bob", ()),  # but e can
        ("line one\n@bob line two", ("bob",)),
        ("@ada @adam @ada.m", ("ada", "adam", "ada.m")),  # prefixes of others stay apart
        ("@alice,@bob;@carl", ("alice", "bob", "carl")),
    ],
)
def test_written_names(body, names):
    assert written_names(body) == names


def test_thousands_of_mentions_are_each_found_once():
    body = " ".join(f"@user{i % 1500:04}" for i in range(3000))
    names = written_names(body)
    assert len(names) == 1500 and names[0] == "user0000" and names[-1] == "user1499"


def test_module_is_pure():
    assert third_party_imports(mentions) == set()
