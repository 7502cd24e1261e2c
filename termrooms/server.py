"""
The server object: it holds the configuration and builds each collaborator once, on
first use (``get_database()``, ``get_site()``...), so a test swaps one dependency by
setting it before anything asks for it, without patching globals.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any
from urllib.parse import urlsplit

import attrs
from autobahn.twisted.resource import WebSocketResource
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.task import deferLater
from twisted.logger import Logger

from termrooms.cluster.fanout import ClusterBus
from termrooms.cluster.limits import MemoryRateLimiter, NoRateLimiter, RateLimiter, RedisRateLimiter
from termrooms.cluster.notifications import Listener
from termrooms.cluster.presence import RedisPresence
from termrooms.cluster.redis import RedisAddress, RedisClient
from termrooms.config import Config, signing_key_path
from termrooms.domain.errors import DatabaseUnavailable
from termrooms.domain.events import Removal
from termrooms.domain.notices import NOTIFY_REASONS, UserNotice
from termrooms.domain.snowflake import SnowflakeGenerator
from termrooms.domain.tokens import AccessTokens
from termrooms.handlers.auth import AuthHandler
from termrooms.handlers.commands import CommandRunner
from termrooms.handlers.passwords import PasswordPolicy, PasswordWorkers
from termrooms.handlers.polls import PollHandler
from termrooms.handlers.retros import RetroHandler
from termrooms.handlers.rooms import RoomHandler, encode_event
from termrooms.handlers.search import SearchHandler
from termrooms.handlers.tasks import TaskHandler
from termrooms.operations.metrics import MeteredLimiter, Meters
from termrooms.storage.database import Database, backoff_delays
from termrooms.storage.notices import USER_NOTICES_CHANNEL
from termrooms.storage.polls import POLLS_CLOSING_CHANNEL
from termrooms.storage.rooms import (
    ROOM_EVENTS_CHANNEL,
    ROOM_REMOVALS_CHANNEL,
    hint_event_txn,
    last_seqs_txn,
    parse_event_hint,
    touch_last_seen_txn,
)
from termrooms.storage.sessions import SESSIONS_ENDED_CHANNEL, SessionsEnded
from termrooms.storage.signing import SigningKeys
from termrooms.transport.gateway.factory import GatewayFactory
from termrooms.transport.http.assets import ClientBundle, installed_bundle
from termrooms.transport.http.auth import register_auth_routes
from termrooms.transport.http.client import register_client_routes
from termrooms.transport.http.health import register_health_routes
from termrooms.transport.http.limits import UNLIMITED_PATHS, HttpLimits
from termrooms.transport.http.polls import register_poll_routes
from termrooms.transport.http.retros import register_retro_routes
from termrooms.transport.http.rooms import register_room_routes
from termrooms.transport.http.router import Router, Utf8PathResource
from termrooms.transport.http.search import register_search_routes
from termrooms.transport.http.tasks import register_task_routes
from termrooms.web import TermroomsSite

_log = Logger()
TOKEN_AUDIENCE = "termrooms"
# How long a listener back from an outage waits for the pool to recheck the sessions.
MISSED_RECHECK_SECONDS = 60.0


@attrs.define(eq=False)
class TermroomsServer:
    """Everything one daemon process serves, wired together."""

    config: Config
    reactor: Any
    database_url: str | None = None
    schema_ready: bool = False
    database: Database | None = None
    redis: RedisClient | None = None
    router: Router | None = None
    snowflakes: SnowflakeGenerator | None = None
    passwords: PasswordWorkers | None = None
    signing_keys: SigningKeys | None = None
    limiter: RateLimiter | None = None
    auth_handler: AuthHandler | None = None
    gateway: GatewayFactory | None = None
    listener: Listener | None = None
    cluster_bus: ClusterBus | None = None
    shared_presence: RedisPresence | None = None
    room_handler: RoomHandler | None = None
    task_handler: TaskHandler | None = None
    poll_handler: PollHandler | None = None
    retro_handler: RetroHandler | None = None
    search_handler: SearchHandler | None = None
    command_runner: CommandRunner | None = None
    meters: Meters | None = None
    http_limits: HttpLimits | None = None
    client_bundle: ClientBundle | None = None
    # Per user with a drain of notices under way: the notices it has yet to send.
    _user_notices: dict[int, deque[UserNotice]] = attrs.field(factory=dict, init=False)

    def __attrs_post_init__(self) -> None:
        # The configured URL; start-up replaces it with the embedded server's when unset.
        if self.database_url is None:
            self.database_url = self.config.database_url

    @property
    def session_database_url(self) -> str | None:
        """Where session-bound work goes: LISTEN, advisory locks, migrations (see
        --database-session-url), since a transaction-mode pooler cannot hold a session."""
        return self.config.database_session_url or self.database_url

    def get_database(self) -> Database:
        if self.database is None:
            url = self.database_url
            if url is None:
                # The embedded server is still starting: requests get 503, not 500.
                raise DatabaseUnavailable("the embedded PostgreSQL is still starting")
            self.database = Database(self.reactor, url, size=self.config.database_pool_size)
        return self.database

    def get_redis(self) -> RedisClient | None:
        """The Redis client, or None when this instance runs alone."""
        if self.redis is None and self.config.redis_url:
            self.redis = RedisClient(self.reactor, RedisAddress.from_url(self.config.redis_url))
        return self.redis

    def get_snowflakes(self) -> SnowflakeGenerator:
        if self.snowflakes is None:
            self.snowflakes = SnowflakeGenerator(self.config.node_id)
        return self.snowflakes

    def get_passwords(self) -> PasswordWorkers:
        if self.passwords is None:
            policy = PasswordPolicy(
                self.config.argon2_memory_kib,
                self.config.argon2_time_cost,
                self.config.argon2_parallelism,
            )
            self.passwords = PasswordWorkers(
                self.reactor, policy, self.config.password_threads, self.config.password_queue
            )
        return self.passwords

    def get_signing_keys(self) -> SigningKeys:
        if self.signing_keys is None:
            self.signing_keys = SigningKeys(signing_key_path(self.config), time.time)
        return self.signing_keys

    def get_meters(self) -> Meters:
        if self.meters is None:
            self.meters = Meters()
        return self.meters

    def get_limiter(self) -> RateLimiter:
        """In Redis when there is one, so a client's budget is the same on every instance."""
        if self.limiter is None:
            redis = self.get_redis()
            limiter: RateLimiter
            if self.config.no_rate_limits:
                limiter = NoRateLimiter()
            elif redis is not None:
                limiter = RedisRateLimiter(redis, self.reactor)
            else:
                limiter = MemoryRateLimiter(time.monotonic)
            self.limiter = MeteredLimiter(limiter, self.get_meters())
        return self.limiter

    def get_http_limits(self) -> HttpLimits:
        if self.http_limits is None:
            off = self.config.no_rate_limits
            self.http_limits = HttpLimits(
                self.get_limiter(),
                per_address=None if off else self.config.http_rate_limit,
                per_user=None if off else self.config.user_rate_limit,
                exempt_usernames=frozenset(self.config.rate_limit_exempt),
            )
        return self.http_limits

    def get_access_tokens(self) -> AccessTokens:
        return AccessTokens(
            issuer=self.config.public_url or "termrooms",
            audience=TOKEN_AUDIENCE,
            ttl_seconds=int(self.config.access_token_ttl.total_seconds()),
        )

    def get_auth_handler(self) -> AuthHandler:
        if self.auth_handler is None:
            self.auth_handler = AuthHandler(
                self.config,
                self.get_database(),
                self.get_passwords(),
                self.get_signing_keys(),
                self.get_access_tokens(),
                self.get_limiter(),
                self.get_snowflakes(),
                time.time,
            )
        return self.auth_handler

    def allowed_origins(self) -> frozenset[str]:
        """Browser origins besides the server's own: --allowed-origins and --public-url's."""
        allowed = set(self.config.allowed_origins)
        if self.config.public_url:
            parts = urlsplit(self.config.public_url)
            allowed.add(f"{parts.scheme}://{parts.netloc.lower()}")
        return frozenset(allowed)

    def get_gateway(self) -> GatewayFactory:
        if self.gateway is None:
            self.gateway = GatewayFactory(
                auth=self.get_auth_handler,
                rooms=self.get_room_handler,
                commands=self.get_command_runner,
                clock=self.reactor,
                server_id=str(self.config.node_id),
                allowed_origins=self.allowed_origins(),
                max_connections=self.config.max_connections,
                max_message_bytes=self.config.ws_max_message_bytes,
                frame_limit=None if self.config.no_rate_limits else self.config.ws_rate_limit,
                slow_consumer_bytes=self.config.slow_consumer_bytes,
                meters=self.get_meters(),
            )
            redis = self.get_redis()
            if redis is not None:
                self._join_cluster(self.gateway, redis)
        return self.gateway

    def _join_cluster(self, gateway: GatewayFactory, redis: RedisClient) -> None:
        """Put Redis and PostgreSQL behind the gateway's bus and presence (see cluster)."""
        self.cluster_bus = ClusterBus(
            local=gateway.local_bus,
            node_id=self.config.node_id,
            redis=redis,
            address=redis.address,
            clock=self.reactor,
            events_after=lambda *args: self.get_room_handler().events_after(*args),
            last_seqs=lambda rooms: self.get_database().run_interaction(last_seqs_txn, rooms),
            hint=lambda room, seq: self.get_database().run_interaction(hint_event_txn, room, seq),
            encode=encode_event,
        )
        gateway.bus = gateway.presence.bus = self.cluster_bus
        self.shared_presence = gateway.presence.shared = RedisPresence(
            redis,
            self.config.node_id,
            self.config.presence_ttl.total_seconds(),
            here=gateway.presence.here,
            announce_gone=lambda room, name, user: gateway.presence.announce(
                room, name, user, "offline"
            ),
            clock=self.reactor,
        )

    def get_room_handler(self) -> RoomHandler:
        if self.room_handler is None:
            gateway = self.get_gateway()
            self.room_handler = RoomHandler(
                self.get_database(),
                gateway.bus,
                self.get_snowflakes(),
                gateway.presence.online_in,
                on_removed=gateway.remove_from_room,
                limiter=self.get_limiter(),
                send_limit=None if self.config.no_rate_limits else self.config.send_rate_limit,
            )
        return self.room_handler

    def get_task_handler(self) -> TaskHandler:
        if self.task_handler is None:
            self.task_handler = TaskHandler(
                self.get_database(), self.get_room_handler(), self.get_snowflakes()
            )
        return self.task_handler

    def get_poll_handler(self) -> PollHandler:
        if self.poll_handler is None:
            self.poll_handler = PollHandler(
                self.get_database(), self.get_room_handler(), self.get_snowflakes(), self.reactor
            )
        return self.poll_handler

    def get_retro_handler(self) -> RetroHandler:
        if self.retro_handler is None:
            self.retro_handler = RetroHandler(
                self.get_database(), self.get_room_handler(), self.get_snowflakes(), self.reactor
            )
        return self.retro_handler

    def get_search_handler(self) -> SearchHandler:
        if self.search_handler is None:
            self.search_handler = SearchHandler(self.get_database())
        return self.search_handler

    def get_command_runner(self) -> CommandRunner:
        if self.command_runner is None:
            self.command_runner = CommandRunner(
                self.get_room_handler(),
                self.get_database(),
                self.get_task_handler(),
                self.get_poll_handler(),
                self.get_search_handler(),
                self.get_retro_handler(),
                self.get_meters(),
            )
        return self.command_runner

    def get_listener(self) -> Listener:
        """What this instance hears from the others through PostgreSQL (notifications)."""
        if self.listener is None:
            gateway = self.get_gateway()
            registry = gateway.registry

            def sessions_ended(payload: str) -> None:
                ended = SessionsEnded.from_payload(payload)
                registry.end_sessions(ended.user_id, ended.family_id, ended.reason)

            handlers = {
                SESSIONS_ENDED_CHANNEL: sessions_ended,
                ROOM_REMOVALS_CHANNEL: lambda p: gateway.remove_from_room(Removal.from_payload(p)),
                USER_NOTICES_CHANNEL: lambda p: self.deliver_notice(UserNotice.from_payload(p)),
                POLLS_CLOSING_CHANNEL: lambda p: self.get_poll_handler().closing_in(float(p)),
            }
            if self.cluster_bus is not None:
                bus = self.cluster_bus
                handlers[ROOM_EVENTS_CHANNEL] = lambda p: bus.hinted(*parse_event_hint(p))

            async def missed() -> None:
                # The listener can be back before the pool is: wait for the pool rather
                # than leave open the sockets of sessions ended meanwhile.
                deadline = self.reactor.seconds() + MISSED_RECHECK_SECONDS
                for delay in backoff_delays():
                    try:
                        await registry.recheck(self.get_auth_handler().session_is_live)
                        break
                    except DatabaseUnavailable:
                        if self.reactor.seconds() + delay > deadline:
                            raise
                        await deferLater(self.reactor, delay)
                if self.cluster_bus is not None:
                    await self.cluster_bus.check_rooms()

            dsn = self.session_database_url
            if dsn is None:
                raise DatabaseUnavailable("the embedded PostgreSQL is still starting")
            self.listener = Listener(self.reactor, dsn, self.config.node_id, handlers, missed)
        return self.listener

    def deliver_notice(self, notice: UserNotice) -> Deferred | None:
        """The frame of a notice (a task change, a notify), read here, if the user has a
        socket here. One user's notices go out one at a time, in the order they came (their
        commit order): an update's read of the task may outlast its delete's notice, which
        needs none."""
        gateway = self.get_gateway()
        if not gateway.has_user(notice.user_id):
            return None
        queue = self._user_notices.get(notice.user_id)
        if queue is not None:  # the user's drain under way takes it
            queue.append(notice)
            return None
        queue = self._user_notices[notice.user_id] = deque([notice])

        async def drain() -> None:
            try:
                while queue:
                    current = queue[0]
                    try:
                        if current.kind in NOTIFY_REASONS:
                            frame = await self.get_room_handler().notify_frame(current)
                        else:
                            frame = await self.get_task_handler().frame_for(current)
                    except Exception:  # noqa: BLE001 - logged; the next notice still goes
                        _log.failure("notice {notice} failed", notice=current)
                    else:
                        if frame is not None:
                            gateway.send_to_user(current.user_id, frame)
                    queue.popleft()
            finally:
                del self._user_notices[notice.user_id]

        return ensureDeferred(drain())

    async def record_last_seen(self) -> None:
        """Write when members were last seen in their rooms: a batch every interval."""
        seen = self.get_gateway().seen_now()
        if seen and self.schema_ready:
            await self.get_database().run_interaction(touch_last_seen_txn, seen)

    def get_client_bundle(self) -> ClientBundle:
        """The web client, read from the installed package once, when the router is built."""
        if self.client_bundle is None:
            self.client_bundle = installed_bundle()
        return self.client_bundle

    def get_router(self) -> Router:
        if self.router is None:
            self.router = Router()
            register_health_routes(self.router, self)
            register_auth_routes(self.router, self)
            register_room_routes(self.router, self)
            register_task_routes(self.router, self)
            register_poll_routes(self.router, self)
            register_retro_routes(self.router, self)
            register_search_routes(self.router, self)
            register_client_routes(self.router, self.get_client_bundle())
            self.router.guard_with(
                self.get_http_limits().before_route, {429: None}, UNLIMITED_PATHS
            )
            gateway = self.get_gateway()
            websocket = WebSocketResource(gateway)

            def websocket_route(request: Any) -> WebSocketResource:
                request.route = "/ws"
                # The Host header as sent: request.getHost() has lost the port asked for.
                gateway.check_origin(
                    request.requestHeaders.getRawHeaders(b"origin"), request.getHeader(b"host")
                )
                return websocket

            self.router.app.route("/ws")(websocket_route)
        return self.router

    def get_site(self) -> TermroomsSite:
        return TermroomsSite(
            Utf8PathResource(self.get_router().app.resource()),
            meters=self.get_meters(),
            trusted_proxies=self.config.trusted_proxies,
            timeout=self.config.http_request_timeout.total_seconds(),
        )
