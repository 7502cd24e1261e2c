"""
Who may do what in a room, as the contract's Roles section says
(../shared/spec/protocol.md): owners do everything in their room; moderators kick, ban,
mute, set the topic, invite and delete others' messages; members send, delete their own
messages and read. A server admin acts as owner everywhere. Banned users may do nothing
in the room; muted users may not send.

Decided where the contract is silent, and pinned by tests/test_roles.py:

* OP and DEOP (and DELETE_ROOM) are owner-only.
* Acting on another user (kick, ban, unban, mute, unmute, op, deop) needs the actor to
  strictly outrank the target: moderators act on members and non-members, owners also on
  moderators, and only a server admin acts on an owner or on another server admin
  (an admin target counts as an owner). Nobody acts on themselves.
* Reading a public room and joining one need no role (the contract lets anyone read a
  public room); ``may_read`` and ``may_join`` put visibility and bans together.
* A ban outweighs every role, a server admin's included: ``may`` is False for everything.

Direct rooms (protocol-v1.1.md, Direct messages) amend this: a server admin is nobody
there (the room is its two members' alone), the two members may do what any member may
but leave it, and nobody changes its topic, invites, moderates or deletes it
(``DIRECT_FORBIDDEN``); a member the other blocks may not send. Every check goes
through ``may``/``effective_role``, so every route and frame inherits the rule.

Pure logic: no Twisted, no database.
"""

from __future__ import annotations

import enum

import attrs

__all__ = [
    "HIERARCHICAL_ACTIONS",
    "PERMITTED",
    "Action",
    "DIRECT_FORBIDDEN",
    "Actor",
    "RoomRole",
    "effective_role",
    "may",
    "may_act_on",
    "may_delete_message",
    "may_join",
    "may_read",
    "role_after",
    "role_rank",
]


class RoomRole(enum.StrEnum):
    """A membership's role, spelled as the memberships.role column stores it.

    A StrEnum, so ``RoomRole.OWNER == "owner"`` and rows compare without converting.
    Order with ``rank`` (owner > moderator > member), not ``<``, which compares spellings.
    """

    OWNER = "owner"
    MODERATOR = "moderator"
    MEMBER = "member"

    @property
    def rank(self) -> int:
        return _RANK[self]


_RANK = {RoomRole.MEMBER: 1, RoomRole.MODERATOR: 2, RoomRole.OWNER: 3}


def role_rank(role: str | None) -> int:
    """Owner 3, moderator 2, member 1, not a member 0; ValueError for anything else."""
    return 0 if role is None else RoomRole(role).rank


class Action(enum.Enum):
    """Something a user may try in a room; moderation values match the REST ``action``."""

    SEND = "send"
    READ = "read"
    SET_TOPIC = "set_topic"
    DELETE_OWN_MESSAGE = "delete_own_message"
    DELETE_ANY_MESSAGE = "delete_any_message"
    KICK = "kick"
    BAN = "ban"
    UNBAN = "unban"
    MUTE = "mute"
    UNMUTE = "unmute"
    OP = "op"
    DEOP = "deop"
    INVITE = "invite"
    DELETE_ROOM = "delete_room"
    MANAGE_TASKS = "manage_tasks"  # update and delete room tasks others created
    CLOSE_POLLS = "close_polls"  # close polls others created
    START_RETROS = "start_retros"  # start a retrospective, and so facilitate it
    LEAVE = "leave"  # end one's membership (POST .../leave, /part)


_MEMBER_ACTIONS = frozenset({Action.SEND, Action.READ, Action.DELETE_OWN_MESSAGE, Action.LEAVE})
_MODERATOR_ACTIONS = _MEMBER_ACTIONS | {
    Action.SET_TOPIC,
    Action.DELETE_ANY_MESSAGE,
    Action.KICK,
    Action.BAN,
    Action.UNBAN,
    Action.MUTE,
    Action.UNMUTE,
    Action.INVITE,
    Action.MANAGE_TASKS,
    Action.CLOSE_POLLS,
    Action.START_RETROS,
}

#: What each room role may do, before bans and mutes are taken into account.
PERMITTED: dict[RoomRole, frozenset[Action]] = {
    RoomRole.MEMBER: _MEMBER_ACTIONS,
    RoomRole.MODERATOR: frozenset(_MODERATOR_ACTIONS),
    RoomRole.OWNER: frozenset(Action),
}

#: Actions aimed at another user, where the actor must outrank the target.
HIERARCHICAL_ACTIONS: frozenset[Action] = frozenset(
    {Action.KICK, Action.BAN, Action.UNBAN, Action.MUTE, Action.UNMUTE, Action.OP, Action.DEOP}
)

#: What nobody does in a direct room, whatever their role: its two members stay its
#: members, and it has no topic, invitations, moderation or deletion.
DIRECT_FORBIDDEN: frozenset[Action] = HIERARCHICAL_ACTIONS | {
    Action.SET_TOPIC,
    Action.INVITE,
    Action.DELETE_ROOM,
    Action.LEAVE,
}


def _to_room_role(value: str | None) -> RoomRole | None:
    """Accept the column's plain string; a misspelt role fails here, not as a silent no."""
    return None if value is None else RoomRole(value)


@attrs.frozen
class Actor:
    """The user attempting something, as far as one room is concerned."""

    room_role: RoomRole | None = attrs.field(converter=_to_room_role)  # None: not a member
    server_admin: bool
    muted: bool = False
    banned: bool = False
    direct: bool = False  # the room is a direct room
    blocked: bool = False  # in a direct room: the other member blocks the actor


def effective_role(actor: Actor) -> RoomRole | None:
    """The role the actor acts with: a server admin acts as owner everywhere but in a
    direct room, which is its members' alone."""
    if actor.server_admin and not actor.direct:
        return RoomRole.OWNER
    return actor.room_role


def may(actor: Actor, action: Action) -> bool:
    """Whether the actor's role allows ``action`` in this room at all (targets aside)."""
    if actor.banned:
        return False
    if (actor.muted or actor.blocked) and action is Action.SEND:
        return False
    if actor.direct and action in DIRECT_FORBIDDEN:
        return False
    role = effective_role(actor)
    return role is not None and action in PERMITTED[role]


def may_act_on(
    actor: Actor,
    target_room_role: str | None,
    target_is_admin: bool,
    action: Action,
    *,
    target_is_self: bool,
) -> bool:
    """Whether the actor may kick/ban/unban/mute/unmute/op/deop this particular target.

    ``target_is_self`` is required, not defaulted, so no caller forgets the self check.
    Whether the role change itself makes sense (op a member, deop a moderator) is
    ``role_after``'s question. ValueError for an action that has no target hierarchy.
    """
    if action not in HIERARCHICAL_ACTIONS:
        raise ValueError(f"{action} is not aimed at another member")
    if target_is_self or not may(actor, action):
        return False
    if actor.server_admin:
        return True
    target_rank = RoomRole.OWNER.rank if target_is_admin else role_rank(target_room_role)
    return role_rank(effective_role(actor)) > target_rank


def may_delete_message(actor: Actor, *, is_author: bool) -> bool:
    """The DELETE message rule: the author, or a moderator and above for anyone's."""
    return may(actor, Action.DELETE_OWN_MESSAGE if is_author else Action.DELETE_ANY_MESSAGE)


def may_read(actor: Actor, *, public: bool) -> bool:
    """Anyone reads a public room; a private one only its members who are not banned."""
    return public or may(actor, Action.READ)


def may_join(actor: Actor, *, public: bool, invited: bool) -> bool:
    """Nobody banned joins; a private room needs an invitation (admins need none)."""
    if actor.banned:
        return False
    return public or invited or effective_role(actor) is not None


def role_after(action: Action, current: str | None) -> RoomRole:
    """The role OP or DEOP leaves behind: member -> moderator, moderator -> member.

    ValueError when the change does not apply (op a moderator, deop an owner, either on
    a non-member), so the caller answers with an error instead of storing a no-op event.
    """
    role = _to_room_role(current)
    if action is Action.OP and role is RoomRole.MEMBER:
        return RoomRole.MODERATOR
    if action is Action.DEOP and role is RoomRole.MODERATOR:
        return RoomRole.MEMBER
    if action not in (Action.OP, Action.DEOP):
        raise ValueError(f"{action} does not change roles")
    raise ValueError(f"cannot {action.value} a user whose room role is {current or 'none'}")
