"""The pure rules of search (termrooms.domain.search): what a q asks for and the excerpt."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from termrooms.domain.errors import ApiError
from termrooms.domain.search import (
    MARK_END,
    MARK_START,
    Q_MAX,
    SNIPPET_MAX,
    SearchQuery,
    excerpt,
    parse_query,
    unmarked,
)


def mark(word: str) -> str:
    return f"{MARK_START}{word}{MARK_END}"


@pytest.mark.parametrize(
    ("q", "text", "words"),
    [
        ("pizza", "pizza", "pizza"),
        ("  lunch   -pizza ", "lunch -pizza", "lunch"),
        ('"salad bar" -"hot dog" soup', '"salad bar" -"hot dog" soup', '"salad bar" soup'),
        ("pizza OR soup", "pizza OR soup", "pizza soup"),
        ("OR pizza or", "pizza", "pizza"),  # OR with nothing to join is no word
        ("pizza OR OR soup", "pizza OR soup", "pizza soup"),
        ("a-b -c", "a-b -c", "a-b"),  # a hyphen inside a word excludes nothing
        ('"unclosed phrase', '"unclosed phrase', '"unclosed phrase'),
        ("tab\there\x00nul", "tab here nul", "tab here nul"),
        ("oracle organ", "oracle organ", "oracle organ"),
    ],
)
def test_what_a_q_asks_for(q, text, words) -> None:
    assert parse_query(q) == SearchQuery(text=text, words=words)


@pytest.mark.parametrize(
    "q", [None, "", "   ", "-x", '-"a b"', "OR", "or Or OR", "-x OR -y", "\x00\x02", "x" * 4001]
)
def test_a_q_with_plainly_no_word_is_a_422_on_q(q) -> None:
    with pytest.raises(ApiError) as caught:
        parse_query(q)
    assert caught.value.status == 422
    assert [e.field for e in caught.value.validation_errors] == ["q"]


def test_q_may_be_as_long_as_a_body() -> None:
    assert parse_query("w" * Q_MAX).words == "w" * Q_MAX


def test_a_body_that_fits_is_its_own_excerpt() -> None:
    body = f"  {mark('all')} of it\n\tstays, {mark('all')}  "
    assert excerpt(body) == body


def test_a_long_body_is_cut_between_words_a_little_before_its_first_match() -> None:
    words = [f"w{n:03}" for n in range(200)]
    words[100] = mark("needle")
    shown = excerpt(" ".join(words))
    text = unmarked(shown)
    assert len(text) <= SNIPPET_MAX
    assert text in " ".join(w if MARK_START not in w else "needle" for w in words)
    assert text.startswith("w0") and not text.endswith(" ")  # whole words
    assert 20 <= shown.index(MARK_START) <= 40
    assert shown.count(MARK_START) == shown.count(MARK_END) == 1


def test_a_match_at_the_start_keeps_the_start() -> None:
    body = mark("first") + " x" * 300
    assert excerpt(body).startswith(mark("first") + " x x")


def test_a_match_the_cut_would_split_is_left_out() -> None:
    body = mark("one") + " " + "x" * 190 + "," + mark("twelve") + " tail" * 10
    shown = excerpt(body)
    assert shown == mark("one") + " " + "x" * 190 + ","
    assert len(unmarked(shown)) <= SNIPPET_MAX


def test_text_without_spaces_is_cut_where_it_is() -> None:
    body = "東" * 100 + mark("京") + "都" * 300
    shown = excerpt(body)
    assert shown == "東" * 40 + mark("京") + "都" * 159


def test_a_first_match_longer_than_the_excerpt_is_cut_and_kept_marked() -> None:
    shown = excerpt("a " + mark("y" * 500))
    assert shown == "a " + mark("y" * (SNIPPET_MAX - 2))


_TEXT = st.text(st.characters(blacklist_characters=MARK_START + MARK_END), max_size=60)
_WORD = _TEXT.filter(bool)  # ts_headline marks words, never nothing


@given(st.lists(st.tuples(_TEXT, _WORD), max_size=30), _TEXT)
def test_an_excerpt_is_always_a_marked_piece_of_the_body(pairs, tail) -> None:
    body = "".join(plain + mark(word) for plain, word in pairs) + tail
    shown = excerpt(body)
    assert len(unmarked(shown)) <= SNIPPET_MAX
    assert unmarked(shown) in unmarked(body)
    # Marks in pairs, never nested, never empty.
    depth = 0
    for char in shown:
        if char in (MARK_START, MARK_END):
            depth += 1 if char == MARK_START else -1
            assert depth in (0, 1)
    assert depth == 0 and mark("") not in shown
