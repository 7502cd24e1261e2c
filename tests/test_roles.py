"""Room roles and permissions, as the contract's Roles section and REST table say."""

from __future__ import annotations

import itertools

import pytest

from support import third_party_imports
from termrooms.domain import roles
from termrooms.domain.roles import (
    Action,
    Actor,
    RoomRole,
    effective_role,
    may,
    may_act_on,
    may_delete_message,
    may_join,
    may_read,
    role_after,
    role_rank,
)

A = Action
ROOM_ROLES = [None, "member", "moderator", "owner"]

# The contract written out by hand (not derived from roles.PERMITTED), lowest role first:
# who may do each action by room role alone. None is "not a member".
MEMBER_UP = {"member", "moderator", "owner"}
MODERATOR_UP = {"moderator", "owner"}
OWNER = {"owner"}
CONTRACT: dict[Action, set[str]] = {
    A.SEND: MEMBER_UP,  # members send
    A.READ: MEMBER_UP,  # ... and read
    A.DELETE_OWN_MESSAGE: MEMBER_UP,  # ... and delete their own messages
    A.LEAVE: MEMBER_UP,  # ... and leave (POST .../leave: member)
    A.SET_TOPIC: MODERATOR_UP,  # moderators set the topic (PATCH room: moderator+)
    A.DELETE_ANY_MESSAGE: MODERATOR_UP,  # ... delete others' messages
    A.KICK: MODERATOR_UP,
    A.BAN: MODERATOR_UP,
    A.UNBAN: MODERATOR_UP,
    A.MUTE: MODERATOR_UP,
    A.UNMUTE: MODERATOR_UP,
    A.INVITE: MODERATOR_UP,  # POST members: moderator+
    A.MANAGE_TASKS: MODERATOR_UP,  # v1.1 Tasks: moderator+ change others' room tasks
    A.CLOSE_POLLS: MODERATOR_UP,  # v1.1 Polls: moderator+ close others' polls
    A.START_RETROS: MODERATOR_UP,  # v1.1 Retrospectives: moderator+ start one
    A.OP: OWNER,  # decided: only owners change roles
    A.DEOP: OWNER,
    A.DELETE_ROOM: OWNER,  # DELETE room: owner, admin
}


def actor(role: str | None = "member", **flags: bool) -> Actor:
    return Actor(room_role=role, server_admin=flags.pop("admin", False), **flags)


def test_contract_table_names_every_action() -> None:
    assert set(CONTRACT) == set(Action)


@pytest.mark.parametrize(("role", "action"), list(itertools.product(ROOM_ROLES, Action)))
def test_each_room_role_may_exactly_what_the_contract_says(role, action) -> None:
    assert may(actor(role), action) is (role in CONTRACT[action])


@pytest.mark.parametrize(("role", "action"), list(itertools.product(ROOM_ROLES, Action)))
def test_server_admin_acts_as_owner_everywhere(role, action) -> None:
    admin = actor(role, admin=True)
    assert effective_role(admin) is RoomRole.OWNER
    assert may(admin, action)


# v1.1 Direct messages, written out by hand: what a member of a direct room may not do.
DIRECT_REFUSED = {
    A.SET_TOPIC, A.INVITE, A.DELETE_ROOM, A.LEAVE,
    A.KICK, A.BAN, A.UNBAN, A.MUTE, A.UNMUTE, A.OP, A.DEOP,
}  # fmt: skip


@pytest.mark.parametrize("action", list(Action))
def test_a_direct_room_member_may_what_any_member_may_but_leave_it(action) -> None:
    member = actor("member", direct=True)
    assert may(member, action) is ("member" in CONTRACT[action] and action not in DIRECT_REFUSED)


@pytest.mark.parametrize(("role", "action"), list(itertools.product(ROOM_ROLES, Action)))
def test_a_server_admin_is_nobody_in_a_direct_room(role, action) -> None:
    admin = actor(role, admin=True, direct=True)
    assert effective_role(admin) == (None if role is None else RoomRole(role))
    assert may(admin, action) is (role in CONTRACT[action] and action not in DIRECT_REFUSED)
    assert may_read(admin, public=False) is (role is not None)
    assert may_join(admin, public=False, invited=False) is (role is not None)


def test_a_blocked_member_of_a_direct_room_reads_but_does_not_send() -> None:
    blocked = actor("member", direct=True, blocked=True)
    assert not may(blocked, A.SEND)
    assert may(blocked, A.READ) and may(blocked, A.DELETE_OWN_MESSAGE)


@pytest.mark.parametrize("role", ["member", "moderator", "owner"])
def test_muted_actor_may_not_send_but_keeps_the_rest_of_its_role(role) -> None:
    muted = actor(role, muted=True)
    assert not may(muted, A.SEND)
    for action in set(Action) - {A.SEND}:
        assert may(muted, action) is (role in CONTRACT[action])


def test_muted_admin_may_not_send_either() -> None:
    assert not may(actor(None, admin=True, muted=True), A.SEND)


@pytest.mark.parametrize(("role", "admin"), list(itertools.product(ROOM_ROLES, [False, True])))
def test_banned_actor_may_nothing_in_the_room(role, admin) -> None:
    banned = actor(role, admin=admin, banned=True)
    assert not any(may(banned, action) for action in Action)


def test_effective_role_is_the_room_role_for_non_admins() -> None:
    assert effective_role(actor("moderator")) is RoomRole.MODERATOR
    assert effective_role(actor(None)) is None


def test_roles_are_ordered_by_rank_not_spelling() -> None:
    assert RoomRole.OWNER.rank > RoomRole.MODERATOR.rank > RoomRole.MEMBER.rank
    assert [role_rank(r) for r in ROOM_ROLES] == [0, 1, 2, 3]
    assert sorted(RoomRole, key=lambda r: r.rank) == [
        RoomRole.MEMBER,
        RoomRole.MODERATOR,
        RoomRole.OWNER,
    ]


def test_actor_takes_the_column_spelling_and_refuses_unknown_roles() -> None:
    assert actor("owner").room_role is RoomRole.OWNER
    assert actor("owner").room_role == "owner"
    with pytest.raises(ValueError):
        actor("admin")
    with pytest.raises(ValueError):
        role_rank("Owner")


def test_actor_is_frozen() -> None:
    import attrs

    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        actor().banned = True  # type: ignore[misc]


# ------------------------------------------------------------------ the hierarchy

MODERATION = [A.KICK, A.BAN, A.UNBAN, A.MUTE, A.UNMUTE]

# (actor role, actor is admin, target role, target is admin) -> may kick/ban/mute/...
HIERARCHY = [
    # moderators act on members and non-members only
    ("moderator", False, "member", False, True),
    ("moderator", False, None, False, True),
    ("moderator", False, "moderator", False, False),
    ("moderator", False, "owner", False, False),
    # owners also act on moderators, not on other owners
    ("owner", False, "member", False, True),
    ("owner", False, None, False, True),
    ("owner", False, "moderator", False, True),
    ("owner", False, "owner", False, False),
    # a server admin counts as an owner: only another admin acts on one
    ("owner", False, "member", True, False),
    ("owner", False, None, True, False),
    ("moderator", False, "member", True, False),
    (None, True, "member", True, True),
    # a server admin acts on anyone, owners included, member of the room or not
    (None, True, "owner", False, True),
    ("member", True, "moderator", False, True),
    ("owner", True, "owner", False, True),
    # members and non-members act on nobody
    ("member", False, "member", False, False),
    ("member", False, None, False, False),
    (None, False, None, False, False),
]


@pytest.mark.parametrize("action", MODERATION)
@pytest.mark.parametrize(("role", "admin", "target", "target_admin", "allowed"), HIERARCHY)
def test_moderation_needs_the_actor_to_outrank_the_target(
    role, admin, target, target_admin, allowed, action
) -> None:
    result = may_act_on(
        actor(role, admin=admin), target, target_admin, action, target_is_self=False
    )
    assert result is allowed


@pytest.mark.parametrize("action", [A.OP, A.DEOP])
@pytest.mark.parametrize(
    ("role", "admin", "target", "allowed"),
    [
        ("owner", False, "member", True),
        ("owner", False, "moderator", True),
        ("owner", False, "owner", False),
        ("moderator", False, "member", False),  # moderators do not change roles
        ("moderator", False, "moderator", False),
        (None, True, "owner", True),  # permitted; role_after then refuses deop of an owner
    ],
)
def test_op_and_deop_are_for_owners(role, admin, target, allowed, action) -> None:
    result = may_act_on(actor(role, admin=admin), target, False, action, target_is_self=False)
    assert result is allowed


@pytest.mark.parametrize("action", sorted(roles.HIERARCHICAL_ACTIONS, key=lambda a: a.value))
@pytest.mark.parametrize(
    ("role", "admin", "target"),
    [("owner", False, "owner"), (None, True, "member"), ("owner", True, "owner")],
)
def test_nobody_acts_on_themselves(role, admin, target, action) -> None:
    assert not may_act_on(actor(role, admin=admin), target, admin, action, target_is_self=True)


def test_banned_owner_acts_on_nobody() -> None:
    banned = actor("owner", banned=True)
    assert not may_act_on(banned, "member", False, A.KICK, target_is_self=False)


def test_muted_moderator_still_moderates() -> None:
    muted = actor("moderator", muted=True)
    assert may_act_on(muted, "member", False, A.MUTE, target_is_self=False)


@pytest.mark.parametrize("action", sorted(set(Action) - roles.HIERARCHICAL_ACTIONS, key=str))
def test_may_act_on_refuses_actions_without_a_target_rank(action) -> None:
    with pytest.raises(ValueError):
        may_act_on(actor("owner"), "member", False, action, target_is_self=False)


def test_may_act_on_demands_the_self_check() -> None:
    with pytest.raises(TypeError):
        may_act_on(actor("owner"), "member", False, A.KICK)  # type: ignore[call-arg]


# ------------------------------------------------------------------ role changes


def test_op_makes_a_member_a_moderator_and_deop_undoes_it() -> None:
    assert role_after(A.OP, "member") is RoomRole.MODERATOR
    assert role_after(A.DEOP, "moderator") is RoomRole.MEMBER
    assert role_after(A.DEOP, RoomRole.MODERATOR) == "member"


@pytest.mark.parametrize(
    ("action", "current"),
    [
        (A.OP, "moderator"),
        (A.OP, "owner"),
        (A.OP, None),
        (A.DEOP, "member"),
        (A.DEOP, "owner"),
        (A.DEOP, None),
        (A.KICK, "member"),
        (A.OP, "admin"),
    ],
)
def test_role_after_refuses_changes_that_do_not_apply(action, current) -> None:
    with pytest.raises(ValueError):
        role_after(action, current)


# ------------------------------------------------------------------ messages, reading, joining


@pytest.mark.parametrize(
    ("role", "is_author", "allowed"),
    [
        ("member", True, True),
        ("member", False, False),
        ("moderator", False, True),
        ("owner", False, True),
        (None, True, False),  # left the room: the message stays
    ],
)
def test_delete_message_is_for_the_author_or_moderators(role, is_author, allowed) -> None:
    assert may_delete_message(actor(role), is_author=is_author) is allowed


def test_admin_deletes_anyones_message_and_banned_author_none() -> None:
    assert may_delete_message(actor(None, admin=True), is_author=False)
    assert not may_delete_message(actor("member", banned=True), is_author=True)


@pytest.mark.parametrize(
    ("who", "public", "allowed"),
    [
        (actor(None), True, True),  # anyone reads a public room
        (actor("member", banned=True), True, True),
        (actor(None), False, False),
        (actor("member"), False, True),
        (actor("member", banned=True), False, False),  # banned: not a private room
        (actor("member", muted=True), False, True),
        (actor(None, admin=True), False, True),
    ],
)
def test_may_read(who, public, allowed) -> None:
    assert may_read(who, public=public) is allowed


@pytest.mark.parametrize(
    ("who", "public", "invited", "allowed"),
    [
        (actor(None), True, False, True),
        (actor(None, banned=True), True, False, False),
        (actor(None), False, False, False),
        (actor(None), False, True, True),
        (actor(None, banned=True), False, True, False),
        (actor(None, admin=True), False, False, True),
        (actor("member"), False, False, True),
    ],
)
def test_may_join(who, public, invited, allowed) -> None:
    assert may_join(who, public=public, invited=invited) is allowed


def test_moderation_actions_are_spelt_as_the_rest_api_spells_them() -> None:
    assert {a.value for a in roles.HIERARCHICAL_ACTIONS} == {
        "kick",
        "ban",
        "unban",
        "mute",
        "unmute",
        "op",
        "deop",
    }


def test_module_is_pure() -> None:
    assert third_party_imports(roles) == {"attrs"}
