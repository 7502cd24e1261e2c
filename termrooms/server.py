"""
The server object: it holds the configuration and builds each collaborator once, on
first use (``get_database()``, ``get_site()``...), so a test swaps one dependency by
setting it before anything asks for it, without patching globals.
"""

from __future__ import annotations

from typing import Any

import attrs

from termrooms.config import Config
from termrooms.database import Database
from termrooms.http.health import register_health_routes
from termrooms.http.router import Router
from termrooms.redis import RedisAddress, RedisClient
from termrooms.snowflake import SnowflakeGenerator
from termrooms.web import TermroomsSite


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

    def get_database(self) -> Database:
        if self.database is None:
            url = self.database_url or self.config.database_url
            if url is None:
                raise RuntimeError("the database URL is not known yet")
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

    def get_router(self) -> Router:
        if self.router is None:
            self.router = Router()
            register_health_routes(self.router, self)
        return self.router

    def get_site(self) -> TermroomsSite:
        return TermroomsSite(self.get_router().app.resource())
