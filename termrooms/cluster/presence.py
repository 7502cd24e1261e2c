"""
Presence shared by every instance, in Redis: who is online in a room, whichever
instance their sockets are on. Entries carry a TTL each instance refreshes, so a crashed
instance's users go offline by themselves (STYLE §4).
"""

from __future__ import annotations

from typing import Any, Callable

import attrs
from twisted.internet.defer import Deferred, ensureDeferred, succeed
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from termrooms.cluster.redis import RedisClient

_log = Logger()

# Per room: a sorted set of "username|node" scored by expiry (ms, Redis's clock), a hash
# of how many instances hold each username, and one hash of room id -> room name for
# the sweep. A crashed instance's entries expire; whoever sweeps them announces offline.
_NOW = "local t = redis.call('TIME') local now = t[1] * 1000 + math.floor(t[2] / 1000) "

_ARRIVE = (
    _NOW
    + """
redis.call('HSET', KEYS[3], ARGV[4], ARGV[5])
if redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1]) == 1 then
  return redis.call('HINCRBY', KEYS[2], ARGV[2], 1) == 1 and 1 or 0
end
return 0
"""
)

_DEPART = """
if redis.call('ZREM', KEYS[1], ARGV[1]) == 1 then
  if redis.call('HINCRBY', KEYS[2], ARGV[2], -1) <= 0 then
    redis.call('HDEL', KEYS[2], ARGV[2])
    return 1
  end
end
return 0
"""

_REFRESH = (
    _NOW
    + """
for i = 3, #ARGV, 3 do
  local key = 'presence:' .. ARGV[i]
  if redis.call('ZADD', key, now + tonumber(ARGV[1]), ARGV[i + 2] .. '|' .. ARGV[2]) == 1 then
    redis.call('HINCRBY', key .. ':count', ARGV[i + 2], 1)
  end
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
end
return 0
"""
)

_SWEEP = (
    _NOW
    + """
local gone = {}
local rooms = redis.call('HGETALL', KEYS[1])
for i = 1, #rooms, 2 do
  local key = 'presence:' .. rooms[i]
  for _, member in ipairs(redis.call('ZRANGEBYSCORE', key, '-inf', now)) do
    redis.call('ZREM', key, member)
    local user = string.match(member, '^(.*)|[^|]*$')
    if redis.call('HINCRBY', key .. ':count', user, -1) <= 0 then
      redis.call('HDEL', key .. ':count', user)
      table.insert(gone, rooms[i]) table.insert(gone, rooms[i + 1]) table.insert(gone, user)
    end
  end
  if redis.call('ZCARD', key) == 0 then
    redis.call('HDEL', KEYS[1], rooms[i])
    redis.call('DEL', key .. ':count')
  end
end
return gone
"""
)

_ONLINE = (
    _NOW
    + """
local result = {}
for i, key in ipairs(KEYS) do
  local users, seen = {}, {}
  for _, member in ipairs(redis.call('ZRANGEBYSCORE', key, now, '+inf')) do
    local user = string.match(member, '^(.*)|[^|]*$')
    if not seen[user] then seen[user] = true table.insert(users, user) end
  end
  result[i] = users
end
return result
"""
)

_ROOMS_KEY = "presence:rooms"
REFRESH_BATCH = 500  # entries per refresh script call, so no call blocks Redis long


@attrs.define(eq=False)
class RedisPresence:
    """The SharedPresence of a cluster: see the Lua above and the gateway's ``Presence``."""

    redis: RedisClient
    node_id: int
    ttl_seconds: float
    here: Callable[[], list[tuple[int, str, str]]]  # this instance's (room, name, username)
    announce_gone: Callable[[int, str, str], None]  # (room, name, username): offline
    clock: Any
    _beat: LoopingCall | None = attrs.field(default=None, init=False)

    @property
    def connected(self) -> bool:
        return self.redis.connected

    def _keys(self, room_id: int) -> list[str]:
        return [f"presence:{room_id}", f"presence:{room_id}:count", _ROOMS_KEY]

    def _member(self, username: str) -> str:
        return f"{username}|{self.node_id}"

    @property
    def _ttl_ms(self) -> int:
        return int(self.ttl_seconds * 1000)

    def arrive(self, room_id: int, room_name: str, username: str) -> Deferred:
        """Fires True when no other instance had the user online in the room."""
        args = [self._member(username), username, self._ttl_ms, room_id, room_name]
        return self.redis.eval(_ARRIVE, self._keys(room_id), args).addCallback(bool)

    def depart(self, room_id: int, room_name: str, username: str) -> Deferred:
        """Fires True when this was the user's last instance in the room."""
        args = [self._member(username), username]
        return self.redis.eval(_DEPART, self._keys(room_id), args).addCallback(bool)

    def online_in(self, room_ids: list[int]) -> Deferred:
        keys = [f"presence:{room_id}" for room_id in room_ids]
        if not keys:
            return succeed({})
        return self.redis.eval(_ONLINE, keys, []).addCallback(
            lambda lists: dict(zip(room_ids, lists, strict=True))
        )

    # ------------------------------------------------------------------ heartbeat

    def start(self) -> None:
        self._beat = LoopingCall(lambda: ensureDeferred(self.heartbeat()))
        self._beat.clock = self.clock
        self._beat.start(self.ttl_seconds / 3, now=False)

    def stop(self) -> None:
        if self._beat is not None and self._beat.running:
            self._beat.stop()

    async def heartbeat(self) -> None:
        """Refresh this instance's entries, then expire those of instances that stopped."""
        if not self.redis.connected:
            return
        try:
            entries = self.here()
            for start in range(0, len(entries), REFRESH_BATCH):
                args: list[Any] = [self._ttl_ms, self.node_id]
                for room_id, room_name, username in entries[start : start + REFRESH_BATCH]:
                    args += [room_id, room_name, username]
                await self.redis.eval(_REFRESH, [_ROOMS_KEY], args)
            gone = await self.redis.eval(_SWEEP, [_ROOMS_KEY], [])
        except Exception as e:
            _log.warn("presence heartbeat failed: {error}", error=str(e))
            return
        for i in range(0, len(gone), 3):
            self.announce_gone(int(gone[i]), gone[i + 1], gone[i + 2])
