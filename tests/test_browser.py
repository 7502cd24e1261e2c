"""
The web client in a real browser: Debian's Chromium driven by Playwright against a real
``twistd -n termrooms`` process and a real PostgreSQL. People register with invite codes
made by ``termrooms invite``, chat from two browser contexts, reload, lose the daemon
while a message is pending, and use the keyboard. Every test fails on any console error
or uncaught exception in a page (the restart test allows only the browser's own notices
of failed WebSocket connections while the daemon is down).

Screenshots of the main screens go to ``$TERMROOMS_TEST_OUTPUT/screenshots`` (default
``test-output/screenshots`` at the top of the source tree).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import time
import urllib.request
from pathlib import Path
from typing import Any, Callable, Iterator

import attrs
import psycopg2
import pytest

from support import TEST_OUTPUT, Daemon, run_termrooms, start_daemon, unavailable

try:
    from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright
except ImportError:  # pragma: no cover - make test installs it
    sync_playwright = None

PASSWORD = "correct horse battery"
SCREENSHOTS = TEST_OUTPUT / "screenshots"
CHROMIUM_ARGS = [
    "--no-sandbox",  # the tests run as root on CI machines
    "--disable-gpu",
    "--disable-background-networking",  # a closed network refuses Chromium's own calls
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# While the daemon is down, Chromium reports each refused WebSocket and fetch itself.
EXPECTED_WHILE_DOWN = re.compile(
    r"WebSocket connection to .* failed|Failed to load resource: net::ERR_CONNECTION_REFUSED"
)


def chromium_path() -> str | None:
    return os.environ.get("TERMROOMS_TEST_CHROMIUM") or shutil.which("chromium")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if sync_playwright is None:
        unavailable("playwright is not installed (make test installs it)")
    executable = chromium_path()
    if executable is None:
        unavailable("chromium is not installed (Debian: apt-get install chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@attrs.define
class Site:
    """One daemon, its database, and the browser contexts opened on it."""

    database_url: str
    tmp_path: Path
    browser: Browser
    daemon: Daemon
    contexts: list[BrowserContext] = attrs.field(factory=list)
    problems: list[str] = attrs.field(factory=list)
    tolerate: re.Pattern | None = None

    @property
    def url(self) -> str:
        return self.daemon.base_url + "/"

    def invite(self) -> str:
        """An invite code, made as an operator makes one: ``termrooms invite``."""
        made = run_termrooms(["invite", "--database-url", self.database_url], check=True)
        return made.stdout.split()[0]

    def person(self, before_load: Callable[[Page], None] | None = None, **options: Any) -> Page:
        """A new browser (its own cookies and storage) on the site, showing its page;
        ``before_load`` may set up the page before it loads."""
        context = self.browser.new_context(**options)
        self.contexts.append(context)
        page = context.new_page()
        page.on("console", lambda message: self._console(message))
        page.on("pageerror", lambda error: self.problems.append(f"page error: {error}"))
        if before_load is not None:
            before_load(page)
        page.goto(self.url)
        return page

    def _console(self, message: Any) -> None:
        if message.type not in ("error", "warning"):
            return
        if self.tolerate is not None and self.tolerate.search(message.text):
            return
        self.problems.append(f"console {message.type}: {message.text}")

    def restart(self, how: signal.Signals = signal.SIGKILL) -> None:
        self.daemon.process.send_signal(how)
        self.daemon.process.wait(10)
        self.start_again()

    def start_again(self) -> None:
        self.daemon = healthy(
            start_daemon(daemon_args(self.database_url), self.tmp_path, port=self.daemon.port)
        )

    def stored(self, body: str) -> int:
        with psycopg2.connect(self.database_url) as connection, connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM room_events WHERE body = %s", (body,))
            return cursor.fetchone()[0]


def healthy(daemon: Daemon, seconds: float = 30) -> Daemon:
    """The daemon once /health is 200: it listens before its schema check is done."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            with urllib.request.urlopen(daemon.base_url + "/health", timeout=5):
                return daemon
        except OSError:  # 503 while starting (HTTPError), or not answering yet
            if time.monotonic() > deadline:
                raise AssertionError(f"/health never became 200:\n{daemon.log()}") from None
            time.sleep(0.05)


def daemon_args(database_url: str) -> list[str]:
    return ["--database-url", database_url, "--no-migrate"]


@pytest.fixture
def site(
    browser: Browser, fresh_migrated_database_url: str, tmp_path: Path, request: Any
) -> Iterator[Site]:
    """The daemon; ``parametrize("site", [[flags]], indirect=True)`` adds flags."""
    run_termrooms(
        [
            "create-user",
            "root",
            "--admin",
            "--password-stdin",
            "--database-url",
            fresh_migrated_database_url,
        ],
        input=PASSWORD + "\n",
        check=True,
    )
    extra = getattr(request, "param", [])
    daemon = healthy(start_daemon(daemon_args(fresh_migrated_database_url) + extra, tmp_path))
    site = Site(fresh_migrated_database_url, tmp_path, browser, daemon)
    try:
        yield site
    finally:
        for context in site.contexts:
            context.close()
        site.daemon.stop()
    assert site.problems == [], "\n".join(site.problems)


def screenshot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))


def register(page: Page, username: str, invite: str, *, through_form: bool = True) -> None:
    """Register on the sign-in form with an invite code typed in (or from ?invite=)."""
    expect(page.locator("#signin")).to_be_visible()
    if through_form:
        page.click("#signin-switch")
        page.fill("#signin-invite", invite)
    page.fill("#signin-username", username)
    page.fill("#signin-password", PASSWORD)
    page.click("#signin-submit")
    expect(page.locator("#chat")).to_be_visible()
    expect(page.locator("#status-text")).to_have_text("connected")


def say(page: Page, text: str) -> None:
    page.fill("#input", text)
    page.press("#input", "Enter")


def join(page: Page, room: str) -> None:
    say(page, f"/join {room}")
    expect(page.locator("#room-title")).to_have_text(f"#{room}")


def lines(page: Page, text: str) -> Any:
    """The visible room's stored lines whose body is exactly ``text``."""
    return page.locator(".room-log:not([hidden]) .events .line .body").filter(
        has_text=re.compile(f"^{re.escape(text)}$")
    )


def two_people(site: Site) -> tuple[Page, Page]:
    alice = site.person()
    register(alice, "alice", site.invite())
    bob = site.person()
    bob.goto(f"{site.url}?invite={site.invite()}")
    register(bob, "bob", "", through_form=False)
    join(alice, "lobby")
    join(bob, "lobby")
    return alice, bob


def wait_for(page: Page, condition: Any, seconds: float = 10) -> None:
    """Let the page run until ``condition()`` holds (Playwright's expect needs a locator)."""
    for _ in range(int(seconds * 10)):
        if condition():
            return
        page.wait_for_timeout(100)
    raise AssertionError(f"still not true after {seconds} s")


def test_two_people_register_join_and_chat(site: Site) -> None:
    first = site.person()
    screenshot(first, "sign-in")
    first.close()
    alice, bob = two_people(site)

    say(alice, "hello bob, see https://example.org/docs.")
    expect(lines(bob, "hello bob, see https://example.org/docs.")).to_have_count(1)
    link = bob.locator(".room-log:not([hidden]) a[href='https://example.org/docs']")
    expect(link).to_have_attribute("rel", "noopener noreferrer nofollow")

    bob.fill("#input", "typing away")
    expect(alice.locator("#typing")).to_have_text("bob is typing…")
    bob.press("#input", "Enter")
    expect(lines(alice, "typing away")).to_have_count(1)
    expect(alice.locator("#typing")).to_have_text("")

    say(alice, "<b>not bold</b> & <script>alert(1)</script>")
    expect(lines(bob, "<b>not bold</b> & <script>alert(1)</script>")).to_have_count(1)
    expect(bob.locator(".room-log b, .room-log script")).to_have_count(0)

    say(bob, "/me waves")
    expect(alice.locator(".room-log:not([hidden]) .line.action")).to_contain_text("* bob waves")
    say(alice, "/topic all things terminal")
    expect(bob.locator("#topic")).to_have_text("all things terminal")
    expect(bob.locator(".line.system.topic_changed")).to_contain_text(
        "alice set the topic: all things terminal"
    )

    members = alice.locator("#member-list")
    expect(members.locator(".member.online")).to_have_count(2)
    expect(members).to_contain_text("@alice")

    screenshot(alice, "chat")
    say(alice, "/help")
    expect(alice.locator(".line.local.reply").last).to_contain_text("/join ROOM")

    bob.context.close()  # bob goes away: alice sees him offline
    site.contexts.remove(bob.context)
    expect(members.locator(".member.online")).to_have_count(1)


def test_unread_counts_and_room_switching_by_keyboard(site: Site) -> None:
    alice, bob = two_people(site)
    join(alice, "other")
    say(bob, "while you were away")
    unread = alice.locator("#room-list .room", has_text="#lobby").locator(".unread")
    expect(unread).to_have_text("1")
    alice.press("#input", "Alt+ArrowUp")
    expect(alice.locator("#room-title")).to_have_text("#lobby")
    expect(unread).to_have_count(0)
    expect(lines(alice, "while you were away")).to_have_count(1)
    alice.press("#input", "Alt+ArrowDown")
    expect(alice.locator("#room-title")).to_have_text("#other")


def api(site: Site, method: str, path: str, body: Any = None, token: str | None = None) -> Any:
    """A bot's HTTP call to the daemon."""
    request = urllib.request.Request(
        site.daemon.base_url + path,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"content-type": "application/json"},
    )
    if token:
        request.add_header("authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read() or b"null")


@pytest.mark.parametrize("site", [["--send-rate-limit", "200/0.01s"]], indirect=True)
def test_scrolling_up_loads_older_history(site: Site) -> None:
    token = api(site, "POST", "/api/auth/login", {"username": "root", "password": PASSWORD})
    token = token["access_token"]
    api(site, "POST", "/api/rooms", {"name": "archive", "visibility": "public"}, token)
    for number in range(1, 131):
        api(site, "POST", "/api/rooms/archive/messages", {"body": f"old {number}"}, token)
    alice = site.person()
    register(alice, "alice", site.invite())
    join(alice, "archive")
    expect(lines(alice, "old 130")).to_have_count(1)
    expect(lines(alice, "old 1")).to_have_count(0)  # only the newest page at first
    log = alice.locator("#log")
    for _ in range(20):
        log.evaluate("node => node.scrollTo(0, 0)")
        if lines(alice, "old 1").count():
            break
        alice.wait_for_timeout(200)
    expect(lines(alice, "old 1")).to_have_count(1)
    bodies = alice.locator(".room-log:not([hidden]) .events .line .body").all_inner_texts()
    numbers = [int(body.split()[1]) for body in bodies if body.startswith("old ")]
    assert numbers == list(range(1, 131))  # every one once, in order


def test_reload_resumes_the_room_with_its_history(site: Site) -> None:
    alice = site.person()
    register(alice, "alice", site.invite())
    join(alice, "lobby")
    for number in range(1, 4):
        say(alice, f"line {number}")
    expect(alice.locator(".line.pending")).to_have_count(0)
    expect(lines(alice, "line 3")).to_have_count(1)

    alice.reload()
    expect(alice.locator("#chat")).to_be_visible()
    expect(alice.locator("#room-title")).to_have_text("#lobby")
    for number in range(1, 4):
        expect(lines(alice, f"line {number}")).to_have_count(1)

    # The refresh token is an httpOnly cookie; page script sees neither it nor a stored token.
    cookies = {cookie["name"]: cookie for cookie in alice.context.cookies()}
    assert cookies["termrooms_refresh"]["httpOnly"] is True
    assert cookies["termrooms_refresh"]["sameSite"] == "Strict"
    assert "termrooms_refresh" not in alice.evaluate("document.cookie")
    stored = alice.evaluate(
        "JSON.stringify({...localStorage}) + JSON.stringify({...sessionStorage})"
    )
    assert "eyJ" not in stored  # no JWT kept in web storage

    say(alice, "after the reload")
    expect(lines(alice, "after the reload")).to_have_count(1)
    alice.click("#signout")
    expect(alice.locator("#signin")).to_be_visible()
    alice.reload()
    expect(alice.locator("#signin")).to_be_visible()


def test_a_pending_message_arrives_once_after_the_daemon_restarts(site: Site) -> None:
    alice, bob = two_people(site)
    say(alice, "before the restart")
    expect(lines(bob, "before the restart")).to_have_count(1)
    site.tolerate = EXPECTED_WHILE_DOWN

    # Frozen, the daemon takes the frames into its socket buffer and answers nothing:
    # the messages are pending when it dies.
    site.daemon.process.send_signal(signal.SIGSTOP)
    say(alice, "sent while frozen")
    expect(alice.locator(".line.pending")).to_have_count(1)
    site.daemon.process.send_signal(signal.SIGKILL)
    site.daemon.process.wait(10)
    expect(alice.locator("#status-text")).to_contain_text("reconnecting in")
    screenshot(alice, "reconnecting")
    say(alice, "sent while down")
    expect(alice.locator(".line.pending")).to_have_count(2)

    site.start_again()
    for page in (alice, bob):
        expect(page.locator("#status-text")).to_have_text("connected", timeout=30_000)
        expect(lines(page, "sent while frozen")).to_have_count(1)
        expect(lines(page, "sent while down")).to_have_count(1)
    expect(alice.locator(".line.pending, .line.sent, .line.failed")).to_have_count(0)
    order = bob.locator(".room-log:not([hidden]) .events .line .body").all_inner_texts()
    assert order.index("sent while frozen") < order.index("sent while down")
    assert site.stored("sent while frozen") == 1
    assert site.stored("sent while down") == 1

    # Retry now: the key skips the wait.
    site.daemon.process.send_signal(signal.SIGKILL)
    site.daemon.process.wait(10)
    expect(alice.locator("#retry-now")).to_be_visible()
    site.start_again()
    alice.keyboard.press("Alt+r")
    expect(alice.locator("#status-text")).to_have_text("connected", timeout=5_000)


def test_tab_completion_history_keys_and_multiline(site: Site) -> None:
    alice, bob = two_people(site)
    say(bob, "hi")
    expect(lines(alice, "hi")).to_have_count(1)
    field = alice.locator("#input")

    field.fill("/jo")
    field.press("Tab")
    expect(field).to_have_value("/join ")
    field.type("lo")
    field.press("Tab")
    expect(field).to_have_value("/join lobby ")
    field.fill("bo")
    field.press("Tab")
    expect(field).to_have_value("bob: ")
    field.type("first")
    field.press("Enter")
    say(alice, "second")
    expect(lines(bob, "second")).to_have_count(1)

    field.type("draft")
    field.press("ArrowUp")
    expect(field).to_have_value("second")
    field.press("ArrowUp")
    expect(field).to_have_value("bob: first")
    field.press("ArrowDown")
    expect(field).to_have_value("second")
    field.press("ArrowDown")
    expect(field).to_have_value("draft")

    field.fill("one")
    field.press("Shift+Enter")
    field.type("two")
    field.press("Enter")
    expect(lines(bob, "one\ntwo")).to_have_count(1)


# Records each browser notification the page raises, and lets the test say whether the
# page is hidden: headless Chromium keeps every page visible (minimising its window or
# bringing another tab to the front changes nothing), so document.hidden is overridden.
NOTICE_RECORDER = """
window.shownNotifications = [];
window.Notification = class extends Notification {
  constructor(title, options) {
    super(title, options);
    window.shownNotifications.push({ title, body: options.body, tag: options.tag });
  }
};
window.pretendHidden = false;
Object.defineProperty(Document.prototype, "hidden", { get: () => window.pretendHidden });
"""


def set_hidden(page: Page, hidden: bool) -> None:
    page.evaluate(
        "hidden => { window.pretendHidden = hidden;"
        " document.dispatchEvent(new Event('visibilitychange')); }",
        hidden,
    )


def alice_and_watched_bob(site: Site) -> tuple[Page, Page]:
    """Alice, and bob, who allowed notifications and whose browser records them."""
    alice = site.person()
    register(alice, "alice", site.invite())
    bob = site.person(
        before_load=lambda page: page.add_init_script(NOTICE_RECORDER),
        permissions=["notifications"],
    )
    bob.goto(f"{site.url}?invite={site.invite()}")
    register(bob, "bob", "", through_form=False)
    return alice, bob


def test_a_room_shares_its_tasks_and_the_assignee_is_notified(site: Site) -> None:
    alice, bob = alice_and_watched_bob(site)
    expect(bob.locator("#alerts-toggle")).to_be_hidden()  # allowed already: nothing to ask
    expect(alice.locator("#alerts-toggle")).to_be_visible()
    join(alice, "lobby")
    join(bob, "lobby")
    join(bob, "elsewhere")
    set_hidden(bob, True)

    # Alice adds a task for bob from the panel, by keyboard.
    alice.keyboard.press("Alt+t")
    expect(alice.locator("#tasks")).to_be_visible()
    expect(alice.locator("#task-empty")).to_be_visible()
    alice.keyboard.press("a")
    expect(alice.locator("#task-title")).to_be_focused()
    alice.keyboard.type("buy <b>milk</b> @bob")
    alice.keyboard.press("Enter")
    task = alice.locator("#task-list .task")
    expect(task).to_have_count(1)
    expect(task).to_contain_text("#1 buy <b>milk</b> @bob")
    expect(task).to_have_class(re.compile(r"\bpending\b"))
    added = "alice added task #1 buy <b>milk</b> for bob"
    expect(alice.locator(".room-log:not([hidden]) .line.system.task_created")).to_contain_text(
        added
    )
    expect(alice.locator("#tasks b, .room-log b")).to_have_count(0)

    # Bob, elsewhere in a hidden tab: the room is marked and the browser tells him once.
    mark = bob.locator("#room-list .room", has_text="#lobby").locator(".unread.notice")
    expect(mark).to_have_text("!")
    wait_for(bob, lambda: bob.evaluate("window.shownNotifications.length") > 0)
    bob.wait_for_timeout(300)  # a second one would come now
    shown = bob.evaluate("window.shownNotifications")
    assert [(note["title"], note["body"]) for note in shown] == [
        ("a task for you in #lobby", added)
    ]
    expect(alice.locator("#room-list .unread")).to_have_count(0)  # nothing for her own action

    set_hidden(bob, False)
    bob.keyboard.press("Alt+ArrowUp")
    expect(bob.locator("#room-title")).to_have_text("#lobby")
    expect(mark).to_have_count(0)
    expect(bob.locator(".room-log:not([hidden]) .line.system.task_created")).to_contain_text(added)

    # He completes it with the keyboard: Space, then Enter, each a step of the cycle.
    bob.keyboard.press("Alt+t")
    mine = bob.locator("#task-list .task")
    expect(mine).to_have_count(1)
    expect(mine).to_be_focused()
    bob.keyboard.press("Space")
    expect(mine).to_have_class(re.compile(r"\bin_progress\b"))
    expect(mine.locator(".task-status")).to_have_text("[~]")
    expect(alice.locator("#task-list .task")).to_have_class(re.compile(r"\bin_progress\b"))
    bob.keyboard.press("Enter")
    expect(mine).to_have_class(re.compile(r"\bcompleted\b"))
    screenshot(bob, "tasks")

    # Alice's panel reads the list again on his task events; her stream says what he did.
    expect(alice.locator("#task-list .task")).to_have_class(re.compile(r"\bcompleted\b"))
    expect(alice.locator("#task-list .task-status")).to_have_text("[x]")
    updates = alice.locator(".room-log:not([hidden]) .line.system.task_updated")
    expect(updates).to_have_text([re.compile("bob started #1$"), re.compile("bob completed #1$")])

    # "mine": his personal tasks and those assigned to him, named by room; a click cycles.
    bob.keyboard.press("m")
    expect(bob.locator("#tasks-mine")).to_have_attribute("aria-pressed", "true")
    expect(bob.locator("#task-list .task-number")).to_have_text(["lobby#1"])
    bob.locator("#task-list .task-status").click()
    expect(bob.locator("#task-list .task")).to_have_class(re.compile(r"\bpending\b"))
    expect(alice.locator(".room-log:not([hidden]) .line.system.task_updated").last).to_contain_text(
        "bob reopened #1"
    )
    bob.keyboard.press("Escape")
    expect(bob.locator("#tasks")).to_be_hidden()
    expect(bob.locator("#input")).to_be_focused()


def test_up_edits_my_last_message_in_place_and_a_mention_reaches_a_hidden_tab(site: Site) -> None:
    alice, bob = alice_and_watched_bob(site)
    join(alice, "lobby")
    join(bob, "lobby")
    say(alice, "lunch at noon?")
    expect(lines(bob, "lunch at noon?")).to_have_count(1)
    join(bob, "elsewhere")
    set_hidden(bob, True)

    # Up on an empty line takes alice's last message; Enter saves it, in place.
    alice.press("#input", "ArrowUp")
    expect(alice.locator("#input")).to_have_value("lunch at noon?")
    expect(alice.locator("#input")).to_have_class(re.compile(r"\bediting\b"))
    alice.fill("#input", "lunch at one, @bob?")
    alice.press("#input", "Enter")
    expect(alice.locator("#input")).to_have_value("")
    edited = lines(alice, "lunch at one, @bob?")
    expect(edited).to_have_count(1)
    expect(alice.locator(".room-log:not([hidden]) .line .edited")).to_have_text(" (edited)")
    expect(lines(alice, "lunch at noon?")).to_have_count(0)

    # Bob, elsewhere in a hidden tab: the edit named him anew, so he hears of it once.
    mark = bob.locator("#room-list .room", has_text="#lobby").locator(".unread.notice")
    expect(mark).to_be_visible()
    wait_for(bob, lambda: bob.evaluate("window.shownNotifications.length") > 0)
    bob.wait_for_timeout(300)
    shown = bob.evaluate("window.shownNotifications")
    assert [note["title"] for note in shown] == ["you were mentioned in #lobby"], shown
    set_hidden(bob, False)
    bob.keyboard.press("Alt+ArrowUp")
    expect(bob.locator("#room-title")).to_have_text("#lobby")
    expect(lines(bob, "lunch at one, @bob?")).to_have_count(1)
    expect(bob.locator(".room-log:not([hidden]) .line.mention")).to_have_count(1)

    # A search finds it by its new words, and no longer by its old ones.
    bob.keyboard.press("Alt+s")
    box = bob.locator("#search-input")
    box.fill("noon")
    box.press("Enter")
    expect(bob.locator("#search")).to_contain_text("no messages found")
    box.fill("lunch one")
    box.press("Enter")
    found = bob.locator("#search-results .search-result")
    expect(found).to_have_count(1)
    expect(found.first.locator("mark")).to_have_text(["lunch", "one"])
    box.press("Escape")

    # Esc cancels an edit; an unchanged line sends nothing; a reload shows the edit.
    alice.press("#input", "ArrowUp")
    alice.press("#input", "Escape")
    expect(alice.locator("#input")).to_have_value("")
    expect(alice.locator("#input")).not_to_have_class(re.compile(r"\bediting\b"))
    alice.press("#input", "ArrowUp")
    alice.press("#input", "Enter")
    alice.reload()
    expect(lines(alice, "lunch at one, @bob?")).to_have_count(1)
    expect(alice.locator(".room-log:not([hidden]) .line .edited")).to_have_count(1)


def test_two_people_write_directly_and_the_direct_room_shows_its_peer(site: Site) -> None:
    alice, bob = alice_and_watched_bob(site)
    join(alice, "lobby")
    join(bob, "lobby")
    set_hidden(bob, True)

    # /msg opens the direct room, switches to it and posts; it is called by the peer.
    say(alice, "/msg bob psst, <b>bob</b>")
    expect(alice.locator("#room-title")).to_have_text("@bob")
    expect(lines(alice, "psst, <b>bob</b>")).to_have_count(1)
    direct = alice.locator("#direct-list .room")
    expect(direct).to_have_count(1)
    expect(direct.locator(".room-name")).to_have_text("@bob")
    expect(direct).to_have_class(re.compile(r"\bonline\b"))
    expect(alice.locator("#room-list .room-name")).to_have_text(["#lobby"])

    # Bob has not this room yet: the dm notice adds it under the rooms, marked.
    entry = bob.locator("#direct-list .room")
    expect(entry.locator(".room-name")).to_have_text("@alice")
    expect(entry.locator(".unread.notice")).to_have_attribute("title", re.compile("1 for you$"))
    expect(entry).to_have_class(re.compile(r"\bonline\b"))
    assert (
        bob.locator("#direct-heading").bounding_box()["y"]
        > bob.locator("#room-list").bounding_box()["y"]
    )
    wait_for(bob, lambda: bob.evaluate("window.shownNotifications.length") > 0)
    shown = bob.evaluate("window.shownNotifications")
    assert [(note["title"], note["body"]) for note in shown] == [
        ("a direct message from alice", "<alice> psst, <b>bob</b>")
    ]
    set_hidden(bob, False)
    expect(bob.locator("#room-title")).to_have_text("#lobby")
    screenshot(bob, "direct-room-list")

    # Alt+Down steps from the rooms into the direct rooms; he answers there.
    bob.press("#input", "Alt+ArrowDown")
    expect(bob.locator("#room-title")).to_have_text("@alice")
    expect(bob.locator("#prompt")).to_have_text("[@alice]>")
    expect(entry.locator(".unread")).to_have_count(0)
    expect(lines(bob, "psst, <b>bob</b>")).to_have_count(1)
    expect(bob.locator(".room-log b")).to_have_count(0)
    say(bob, "hi alice")
    expect(lines(alice, "hi alice")).to_have_count(1)

    # /query switches to the direct room from elsewhere, by mouse back, and posts nothing.
    alice.locator("#room-list .room", has_text="#lobby").click()
    expect(alice.locator("#room-title")).to_have_text("#lobby")
    say(alice, "/query bob")
    expect(alice.locator("#room-title")).to_have_text("@bob")
    bob.locator("#room-list .room", has_text="#lobby").click()
    expect(bob.locator("#room-title")).to_have_text("#lobby")
    bob.locator("#direct-list .room").click()
    expect(bob.locator("#room-title")).to_have_text("@alice")
    assert site.stored("hi alice") == 1 and site.stored("psst, <b>bob</b>") == 1

    # A reload lists it by its peer again; bob leaves, and his dot goes out.
    alice.reload()
    expect(alice.locator("#room-title")).to_have_text("@bob")
    expect(direct.locator(".room-name")).to_have_text("@bob")
    expect(lines(alice, "hi alice")).to_have_count(1)
    bob.context.close()
    site.contexts.remove(bob.context)
    expect(direct).to_have_class(re.compile(r"\boffline\b"))


@pytest.mark.parametrize("site", [["--send-rate-limit", "200/0.01s"]], indirect=True)
def test_search_lists_marked_snippets_pages_back_and_jumps_to_the_message(site: Site) -> None:
    root = token_of(site, "root")
    post = lambda room, body: api(  # noqa: E731
        site, "POST", f"/api/rooms/{room}/messages", {"body": body}, root
    )
    for room in ("lobby", "archive"):
        api(site, "POST", "/api/rooms", {"name": room, "visibility": "public"}, root)
    post("lobby", "the <b>secret</b> lunch plan")
    for number in range(1, 61):  # the plan is not on the page the room shows first
        post("lobby", f"filler {number}")
    post("archive", "an archived lunch")
    alice = site.person()
    register(alice, "alice", site.invite())
    join(alice, "lobby")
    expect(lines(alice, "filler 60")).to_have_count(1)
    expect(lines(alice, "the <b>secret</b> lunch plan")).to_have_count(0)

    # Alt+S opens the box; the results say where, when, who, and mark the match as text.
    alice.keyboard.press("Alt+s")
    box = alice.locator("#search-input")
    expect(box).to_be_focused()
    box.fill("secret")
    box.press("Enter")
    results = alice.locator("#search-results .search-result")
    expect(results).to_have_count(1)
    expect(results.first).to_have_text(
        re.compile(r"^#lobby \d\d:\d\d <root> the <b>secret</b> lunch plan$")
    )
    expect(results.first.locator("mark")).to_have_text(["secret"])
    expect(alice.locator("#search b, #search script")).to_have_count(0)
    screenshot(alice, "search")

    # By keyboard: Down to the result, Enter jumps; older history loads to show it.
    box.press("ArrowDown")
    expect(results.first).to_be_focused()
    alice.keyboard.press("Enter")
    expect(alice.locator("#search")).to_be_hidden()
    target = alice.locator(".room-log:not([hidden]) .line.found")
    expect(target.locator(".body")).to_have_text("the <b>secret</b> lunch plan")
    expect(target).to_be_in_viewport()
    expect(alice.locator(".room-log b")).to_have_count(0)
    expect(target).to_have_count(0, timeout=6000)  # marked for a moment only

    # Pages back with has_more and before: 60 fillers are three pages of 20.
    alice.keyboard.press("Alt+s")
    box.fill("filler")
    box.press("Enter")
    expect(results).to_have_count(20)
    expect(results.first.locator(".snippet")).to_have_text("filler 60")
    more = alice.locator("#search-more")
    more.click()
    expect(results).to_have_count(40)
    more.click()
    expect(results).to_have_count(60)
    expect(results.last.locator(".snippet")).to_have_text("filler 1")
    expect(more).to_be_hidden()

    # A public room she is not in: the click joins it and shows the message there.
    box.fill("lunch")
    box.press("Enter")
    expect(results).to_have_count(2)
    results.filter(has_text="#archive").click()
    expect(alice.locator("#room-title")).to_have_text("#archive")
    expect(alice.locator(".room-log:not([hidden]) .line.found .body")).to_have_text(
        "an archived lunch"
    )

    # Nothing to find is said in the box; /search in the input answers as text.
    alice.keyboard.press("Alt+s")
    box.fill("nothingmatcheshere")
    box.press("Enter")
    expect(alice.locator("#search-status")).to_have_text("no messages found")
    alice.keyboard.press("Escape")
    expect(alice.locator("#input")).to_be_focused()
    say(alice, "/search secret")
    expect(alice.locator(".line.local.reply").last).to_contain_text("root: the <b>secret</b> lunch")


def token_of(site: Site, username: str) -> str:
    """An access token for ``username``, as a bot signs in beside its browser."""
    answer = api(site, "POST", "/api/auth/login", {"username": username, "password": PASSWORD})
    return answer["access_token"]


def poll_chart(page: Page) -> Any:
    return page.locator(".room-log:not([hidden]) .poll")


def expect_results(page: Page, counts: list[str], widths: list[str], mine: list[bool]) -> None:
    """The chart's counts, its bars' widths and which options are marked the reader's."""
    options = poll_chart(page).locator(".poll-option")
    expect(options.locator(".poll-count")).to_have_text(counts)
    for index, width in enumerate(widths):
        expect(options.nth(index).locator(".poll-fill")).to_have_attribute(
            "style", f"width: {width};"
        )
    for index, chosen in enumerate(mine):
        expect(options.nth(index)).to_have_attribute("aria-pressed", str(chosen).lower())


def test_a_poll_charts_its_votes_live_and_takes_them_by_keyboard_and_mouse(site: Site) -> None:
    alice, bob = two_people(site)
    alice_token = token_of(site, "alice")
    say(bob, "lunch, anyone?")
    say(alice, "let's vote: https://example.org/menu")
    question = "Lunch today?"
    api(
        site,
        "POST",
        "/api/rooms/lobby/polls",
        {"question": question, "options": ["pizza", "salad", "soup"], "closes_in_s": 3600},
        alice_token,
    )
    for page in (alice, bob):
        created = page.locator(".room-log:not([hidden]) .line.system.poll_created")
        expect(created).to_contain_text(f"alice started a poll: {question}")
        expect(poll_chart(page).locator(".poll-text")).to_have_text(["pizza", "salad", "soup"])
        expect(poll_chart(page).locator(".poll-facts")).to_have_text(
            re.compile(r"^one choice · 0 voters · closes (\d{4}-\d\d-\d\d )?\d\d:\d\d$")
        )
        expect_results(page, ["0", "0", "0"], ["0%", "0%", "0%"], [False, False, False])

    # Bob votes by keyboard: Alt+V gives the newest poll the keys, a digit chooses.
    bob.keyboard.press("Alt+v")
    expect(poll_chart(bob).locator(".poll-option").first).to_be_focused()
    bob.keyboard.press("2")
    expect_results(bob, ["0", "1", "0"], ["0%", "100%", "0%"], [False, True, False])
    expect_results(alice, ["0", "1", "0"], ["0%", "100%", "0%"], [False, False, False])
    expect(alice.locator(".poll-option").nth(1).locator(".poll-voters")).to_have_text("bob")

    # Alice by mouse. Bob's frame has no one's choices: his own stay marked.
    alice.locator(".poll-option", has_text="pizza").click()
    expect_results(alice, ["1", "1", "0"], ["50%", "50%", "0%"], [True, False, False])
    expect_results(bob, ["1", "1", "0"], ["50%", "50%", "0%"], [False, True, False])

    # One choice: choosing another replaces it, choosing it again withdraws.
    expect(poll_chart(bob).locator(".poll-option").nth(1)).to_be_focused()
    bob.keyboard.press("ArrowUp")
    bob.keyboard.press("Space")
    expect_results(alice, ["2", "0", "0"], ["100%", "0%", "0%"], [True, False, False])
    expect(alice.locator(".poll-option").first.locator(".poll-voters")).to_have_text("alice, bob")
    bob.keyboard.press("Enter")
    expect_results(bob, ["1", "0", "0"], ["100%", "0%", "0%"], [False, False, False])
    expect(alice.locator(".poll-facts")).to_contain_text("1 voter ·")
    bob.keyboard.press("3")
    expect_results(alice, ["1", "0", "1"], ["50%", "0%", "50%"], [True, False, False])
    bob.keyboard.press("Escape")
    expect(bob.locator("#input")).to_be_focused()

    # The README's screenshot: the tasks panel open beside a live poll.
    alice.keyboard.press("Alt+t")
    alice.keyboard.press("a")
    alice.keyboard.type("book a table @bob")
    alice.keyboard.press("Enter")
    expect(alice.locator("#task-list .task-title")).to_have_text(["book a table"])
    alice.locator("#input").focus()
    alice.mouse.move(0, 0)  # no option under a hovering pointer
    screenshot(alice, "web-client")

    # A reload draws the chart from history and reads bob's own choice again.
    bob.reload()
    expect_results(bob, ["1", "0", "1"], ["50%", "0%", "50%"], [False, False, True])

    poll_id = poll_chart(bob).get_attribute("data-poll")
    api(site, "POST", f"/api/rooms/lobby/polls/{poll_id}/close", None, alice_token)
    for page in (alice, bob):
        expect(poll_chart(page)).to_have_class(re.compile(r"\bclosed\b"))
        facts = poll_chart(page).locator(".poll-facts")
        expect(facts).to_have_text("one choice · 2 voters · closed")
        expect(page.locator(".room-log:not([hidden]) .line.system.poll_closed")).to_contain_text(
            f"poll closed: {question} — pizza 1, salad 0, soup 1"
        )
    expect_results(bob, ["1", "0", "1"], ["50%", "0%", "50%"], [False, False, True])

    # Too late: the server's 409 is said in the stream, and nothing changes.
    site.tolerate = re.compile(r"Failed to load resource: .* 409")
    bob.locator(".poll-option", has_text="salad").click()
    expect(bob.locator(".line.local.error").last).to_contain_text(
        f"could not vote in {question}: This poll is closed."
    )
    expect_results(bob, ["1", "0", "1"], ["50%", "0%", "50%"], [False, False, True])


def test_page_headers_theme_and_phone_layout(site: Site) -> None:
    page = site.person(viewport={"width": 390, "height": 780})
    response = page.goto(site.url)
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    assert "connect-src 'self'" in policy
    assert response.headers["x-content-type-options"] == "nosniff"
    register(page, "alice", site.invite())
    join(page, "lobby")
    say(page, "from a phone")
    expect(lines(page, "from a phone")).to_have_count(1)

    members = page.locator("#members")
    expect(members).to_be_hidden()
    page.keyboard.press("Alt+p")
    expect(members).to_be_visible()
    page.keyboard.press("Escape")
    expect(members).to_be_hidden()
    expect(page.locator("#input")).to_be_focused()

    tasks = page.locator("#tasks")
    page.keyboard.press("Alt+t")
    expect(tasks).to_be_visible()
    box = tasks.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390
    page.keyboard.press("a")
    page.keyboard.type("from a phone too")
    page.keyboard.press("Enter")
    expect(page.locator("#task-list .task-title")).to_have_text(["from a phone too"])
    screenshot(page, "phone-tasks")
    page.keyboard.press("Escape")
    expect(tasks).to_be_hidden()

    # A poll of long options fits too, bars and all; anonymous, it names no one.
    long_option = "a choice whose name is long enough that it has to wrap on a phone screen"
    api(
        site,
        "POST",
        "/api/rooms/lobby/polls",
        {
            "question": "Fits <b>a phone</b>?",
            "options": [long_option, "short"],
            "multiple": True,
            "anonymous": True,
        },
        token_of(site, "alice"),
    )
    chart = poll_chart(page)
    options = chart.locator(".poll-option")
    created = page.locator(".line.system.poll_created")
    expect(created).to_contain_text("alice started a poll: Fits <b>a phone</b>?")
    expect(page.locator(".room-log b")).to_have_count(0)
    options.first.click()
    expect_results(page, ["1", "0"], ["100%", "0%"], [True, False])
    options.nth(1).click()  # several choices: a second one adds to the first
    expect_results(page, ["1", "1"], ["100%", "100%"], [True, True])
    expect(chart.locator(".poll-facts")).to_have_text("several choices · anonymous · 1 voter")
    expect(chart.locator(".poll-voters").first).to_be_hidden()
    for box in [chart.bounding_box(), *(option.bounding_box() for option in options.all())]:
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390
    assert page.locator("#log").evaluate("log => log.scrollWidth <= log.clientWidth")
    screenshot(page, "phone-poll")

    page.click("#theme-toggle")
    expect(page.locator("html")).to_have_attribute("data-theme", "light")
    screenshot(page, "phone-light")
    page.reload()
    expect(page.locator("html")).to_have_attribute("data-theme", "light")


def test_the_access_token_is_renewed_and_a_revoked_session_signs_out(site: Site) -> None:
    frames: list[str] = []

    def record(page: Page) -> None:
        page.clock.install()  # page timers run as usual, and can be jumped forward
        page.on("websocket", lambda socket: listen(socket))

    def listen(socket: Any) -> None:
        socket.on("framesent", lambda payload: frames.append(f"sent {payload}"))
        socket.on("framereceived", lambda payload: frames.append(f"received {payload}"))

    page = site.person(before_load=record)
    register(page, "alice", site.invite())
    join(page, "lobby")

    # Tokens live 15 minutes: past 80% of that, the client refreshes over HTTP (cookie
    # and CSRF header) and renews its socket with an `auth` frame; the socket stays.
    # Time jumps 20 s at a time, letting pings be answered, as the heartbeat needs.
    for _ in range(38):
        page.clock.fast_forward(20_000)
        page.wait_for_timeout(100)
    wait_for(page, lambda: any(frame.startswith('sent {"type":"auth"') for frame in frames))
    wait_for(page, lambda: any(frame.startswith('received {"type":"authed"') for frame in frames))
    assert sum(frame.startswith('received {"type":"welcome"') for frame in frames) == 1
    say(page, "still here")
    expect(lines(page, "still here")).to_have_count(1)

    # An operator sets a new password: the session ends (4001), the refresh is refused,
    # and the page goes back to the sign-in form.
    site.tolerate = re.compile(r"Failed to load resource: .* 401")
    run_termrooms(
        ["users", "set-password", "alice", "--password-stdin", "--database-url", site.database_url],
        input="another good password\n",
        check=True,
    )
    expect(page.locator("#signin")).to_be_visible(timeout=10_000)


def retro_column(page: Page, name: str) -> Any:
    return page.locator(f'#retro-board .retro-column[aria-label="{name}"]')


def retro_stack(page: Page, title: str) -> Any:
    return page.locator("#retro-board .retro-stack").filter(
        has=page.locator(".retro-stack-title", has_text=re.compile(f"^{re.escape(title)}$"))
    )


def retro_line(page: Page, kind: str) -> Any:
    return page.locator(f".room-log:not([hidden]) .line.system.{kind}")


def test_three_people_run_a_retro_on_the_board_by_keyboard_and_mouse(site: Site) -> None:
    ada = site.person()
    register(ada, "ada", site.invite())
    join(ada, "team")  # the first in: the room's owner, who may start a retro
    bob = site.person()
    register(bob, "bob", site.invite())
    join(bob, "team")
    cy = site.person(
        viewport={"width": 390, "height": 780}
    )  # on a phone: the board covers the stream
    register(cy, "cyd", site.invite())
    join(cy, "team")
    people = (ada, bob, cy)

    # Ada starts it from the board; it opens by itself for the others.
    ada.keyboard.press("Alt+b")
    expect(ada.locator("#retro-empty")).to_be_visible()
    ada.fill("#retro-start-title", "Sprint 12")
    ada.press("#retro-start-title", "Enter")
    for page in people:
        expect(page.locator("#retro")).to_be_visible()
        expect(page.locator("#retro-title")).to_have_text("Sprint 12")
        expect(page.locator("#retro-phases .current")).to_have_text("collect")
        expect(retro_line(page, "retro_started")).to_contain_text(
            "ada started the retro “Sprint 12”"
        )
    expect(ada.locator("#retro-next")).to_have_text("group ▸")
    expect(bob.locator("#retro-next")).to_be_hidden()  # only the facilitator moves phases

    # Cards: by keyboard (a, type, Enter) and by mouse; others' stay face down.
    ada.locator("#retro").focus()
    ada.keyboard.press("a")
    expect(retro_column(ada, "went well").locator("input")).to_be_focused()
    ada.keyboard.type("pairng")
    ada.keyboard.press("Enter")
    mine = retro_column(ada, "went well").locator(".retro-card.mine .retro-card-text")
    expect(mine).to_have_text("pairng")
    ada.keyboard.press("Escape")  # from the field back to the cards; e edits her own
    ada.keyboard.press("e")
    ada.keyboard.type("pairing")
    ada.keyboard.press("Enter")
    expect(mine).to_have_text("pairing")
    for page, cards in (
        (bob, [("went well", "pair programming"), ("to improve", "flaky CI")]),
        (cy, [("to improve", "slow CI"), ("ideas", "demo day")]),
    ):
        for column, text in cards:
            field = retro_column(page, column).locator("input")
            field.click()
            field.fill(text)
            field.press("Enter")
            expect(retro_column(page, column).locator(".retro-card.mine")).to_contain_text([text])
    expect(ada.locator("#retro-board .retro-card.face-down")).to_have_count(4)
    expect(retro_column(ada, "to improve").locator(".retro-card.face-down")).to_have_count(2)
    expect(ada.locator("#retro-board")).not_to_contain_text("flaky CI")
    expect(cy.locator("#retro-board .retro-card.face-down")).to_have_count(3)
    # On cyd's phone the columns stack, one under another, and nothing sticks out sideways.
    tops = []
    for name in ("went well", "to improve", "ideas"):
        box = retro_column(cy, name).bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390
        tops.append(box["y"])
    assert tops[0] < tops[1] < tops[2]
    assert cy.locator("#retro").evaluate("board => board.scrollWidth <= board.clientWidth")

    ada.click("#retro-next")
    for page in people:
        expect(page.locator("#retro-phases .current")).to_have_text("group")
        expect(page.locator("#retro-board .retro-card.face-down")).to_have_count(0)
        expect(retro_line(page, "retro_phase_changed").last).to_contain_text(
            "ada moved the retro to group"
        )

    # Cy merges her card into bob's by keyboard (m, pick, Enter) and names the stack (t).
    cy.keyboard.press("Alt+b")  # the open board takes the keys
    expect(cy.locator("#retro-board [data-nav]:focus")).to_have_text(re.compile("^pairing"))
    for key in ("l", "j", "m", "k", "Enter"):
        cy.keyboard.press(key)
    improve = retro_column(ada, "to improve")
    expect(improve.locator(".retro-stack")).to_have_count(1)
    expect(improve.locator(".retro-card-text")).to_have_text(["flaky CI", "slow CI"])
    cy.keyboard.press("t")
    cy.keyboard.type("CI")
    cy.keyboard.press("Enter")
    expect(retro_stack(ada, "CI")).to_have_count(1)
    # Bob merges by mouse: "merge" on his card, then a click on the card it joins.
    well = retro_column(bob, "went well")
    well.locator(".retro-card", has_text="pair programming").locator("button").click()
    well.locator(".retro-card", has_text="pairing").first.click()
    expect(retro_column(cy, "went well").locator(".retro-stack")).to_have_count(1)

    ada.click("#retro-next")
    for page in people:
        expect(page.locator("#retro-phases .current")).to_have_text("vote")
        expect(page.locator("#retro-votes-left")).to_contain_text("3 of 3 votes left")

    # Bob votes by keyboard: from the input line Alt+B gives the board the keys, then
    # three votes on CI (+ + v) and one back (-).
    bob.locator("#input").focus()
    bob.keyboard.press("Alt+b")
    bob.keyboard.press("l")
    expect(bob.locator("#retro-board [data-nav]:focus")).to_contain_text("CI")
    for key in ("+", "+", "v"):
        bob.keyboard.press(key)
    expect(retro_stack(bob, "CI").locator(".retro-dots")).to_have_text("●●●")
    expect(bob.locator("#retro-votes-left")).to_contain_text("0 of 3 votes left")
    bob.keyboard.press("-")
    expect(retro_stack(bob, "CI").locator(".retro-dots")).to_have_text("●●")
    expect(bob.locator("#retro-votes-left")).to_contain_text("1 of 3 votes left")
    # Cy and ada by mouse; nobody sees totals, or anyone else's dots, while voting.
    retro_stack(cy, "CI").get_by_role("button", name="vote for CI (+)").click()
    expect(cy.locator("#retro-votes-left")).to_contain_text("2 of 3 votes left")
    retro_stack(cy, "demo day").locator("button.retro-vote").first.click()
    expect(cy.locator("#retro-votes-left")).to_contain_text("1 of 3 votes left")
    for _ in range(2):
        retro_stack(ada, "pairing").locator("button.retro-vote").first.click()
    expect(retro_stack(ada, "pairing").locator(".retro-dots")).to_have_text("●●")
    expect(ada.locator("#retro-board .retro-votes")).to_have_count(0)
    expect(retro_stack(ada, "CI").locator(".retro-dots")).to_have_count(0)

    # Bob reloads mid-way: the board opens again as it was, his own votes and all.
    bob.reload()
    expect(bob.locator("#retro")).to_be_visible()
    expect(bob.locator("#retro-phases .current")).to_have_text("vote")
    expect(retro_stack(bob, "CI").locator(".retro-dots")).to_have_text("●●")
    expect(bob.locator("#retro-votes-left")).to_contain_text("1 of 3 votes left")
    expect(retro_column(bob, "to improve").locator(".retro-card-text")).to_have_text(
        ["flaky CI", "slow CI"]
    )

    # Discussing: stacks ranked by votes, totals shown; ada focuses the top one (f).
    ada.click("#retro-next")
    ranked = ["CI", "pairing", "demo day"]
    for page in people:
        expect(page.locator("#retro-phases .current")).to_have_text("discuss")
        expect(page.locator("#retro-board .retro-stack-title")).to_have_text(ranked)
        expect(page.locator("#retro-board .retro-votes")).to_have_text(
            ["3 votes", "2 votes", "1 vote"]
        )
    ada.locator("#retro").focus()
    ada.keyboard.press("k")
    ada.keyboard.press("k")  # up to the top stack: CI
    ada.keyboard.press("f")
    for page in people:
        expect(page.locator("#retro-board .retro-stack.focused .retro-stack-title")).to_have_text(
            "CI"
        )
    expect(bob.locator("#retro-board .retro-focus")).to_have_count(0)  # the facilitator's alone

    # An action for cyd, and everyone's happiness: the histogram, never whose score is whose.
    bob.fill("#retro-action-title", "fix the flaky test @cyd")
    bob.press("#retro-action-title", "Enter")
    for page in people:
        expect(page.locator("#retro-action-list .retro-action")).to_have_text(
            [re.compile(r"#1 fix the flaky test @cyd$")]
        )
    expect(retro_line(ada, "task_created")).to_contain_text("bob added task #1 fix the flaky test")
    for page, score in ((ada, 4), (bob, 5), (cy, 4)):
        page.get_by_role("button", name=f"happiness {score} of 5").click()
        expect(page.locator("#retro-happy-facts")).to_contain_text(f"yours: {score}")
    for page in people:
        expect(page.locator("#retro-histogram .retro-bar-count")).to_have_text(
            ["1", "2", "0", "0", "0"]
        )
    for box in [cy.locator("#retro").bounding_box(), cy.locator("#retro-board").bounding_box()]:
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390
    assert cy.locator("#retro").evaluate("board => board.scrollWidth <= board.clientWidth")
    ada.mouse.move(0, 0)
    screenshot(ada, "retro-board")
    screenshot(cy, "phone-retro")

    ada.click("#retro-next")  # "close the retro ▸"
    for page in people:
        expect(page.locator("#retro-phases .current")).to_have_text("closed")
        expect(retro_line(page, "retro_closed")).to_contain_text(
            "retro closed: top “CI” 3 votes, “pairing” 2 votes, “demo day” 1 vote"
        )
    ada.click("#retro-summary-button")
    expect(ada.locator("#retro-summary")).to_contain_text("Sprint 12")

    retro_id = api(site, "GET", "/api/rooms/team/retros?limit=1", token=token_of(site, "bob"))
    retro_id = retro_id["retros"][0]["id"]
    request = urllib.request.Request(
        f"{site.daemon.base_url}/api/rooms/team/retros/{retro_id}/summary",
        headers={"authorization": f"Bearer {token_of(site, 'ada')}"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.headers["content-type"].startswith("text/markdown")
        summary = response.read().decode()
    # What they did, as the team would paste it: topics by votes with their cards, the
    # action and its assignee, and the happiness counts (nobody's own score).
    for said in (
        "# Sprint 12",
        "### 1. CI (to improve, 3 votes)\n- flaky CI\n- slow CI",
        "### 2. pairing (went well, 2 votes)\n- pairing\n- pair programming",
        "### 3. demo day (ideas, 1 vote)\n- demo day",
        "## Actions\n- [ ] #1 fix the flaky test (@cyd)",
        "- 5/5: 1",
        "- 4/5: 2",
    ):
        assert said in summary, summary
    joined = re.search(r"^Participants: (.*)$", summary, re.M)
    assert joined is not None and sorted(joined[1].split(", ")) == ["ada", "bob", "cyd"]
