"""Connections to the primary a Sentinel names, checked to be a primary.

redis-py asks the Sentinels for the primary's address on every connect and takes the
first answer that looks healthy. Right after a failover one Sentinel may still name the
old primary, and when that server comes back (restarted as a replica of the new one,
its data still syncing), the answer looks healthy again: a connection made then reaches
a replica. A write there fails (READONLY, which redis-py turns into a reconnect), but a
read succeeds, on a replica that may not have the data yet, and `lookup` would say that
a live thread is unknown. These connections ask the server its ROLE once per connect,
and refuse one that is not a primary with a ConnectionError, which the connection's
retry answers by asking the Sentinels again (from_sentinel gives it a dozen retries with
backoff, several seconds: about what a Sentinel takes to catch up).
"""

from __future__ import annotations

from typing import Any

import redis.asyncio.sentinel
import redis.sentinel
from redis.exceptions import ConnectionError as RedisConnectionError


def _refusal(reply: Any, address: Any) -> RedisConnectionError | None:
    """The error for a ROLE reply that is not a primary's (None for a primary)."""
    role = reply[0] if isinstance(reply, list | tuple) and reply else reply
    if isinstance(role, bytes):
        role = role.decode("utf-8", "replace")
    if role == "master":
        return None
    return RedisConnectionError(
        f"{address[0]}:{address[1]}, named primary by a Sentinel, answered ROLE {role!r}: "
        "a stale Sentinel answer after a failover; asking the Sentinels again"
    )


class PrimaryConnection(redis.sentinel.SentinelManagedConnection):
    """A Sentinel-managed connection that is only kept when it reached a primary."""

    def connect_to(self, address: Any) -> None:
        super().connect_to(address)  # type: ignore[no-untyped-call]
        if self.connection_pool.is_master:
            self.send_command("ROLE")  # type: ignore[no-untyped-call]
            error = _refusal(self.read_response(), address)
            if error is not None:
                self.disconnect()  # type: ignore[no-untyped-call]
                raise error


class AsyncPrimaryConnection(redis.asyncio.sentinel.SentinelManagedConnection):
    """The asyncio twin of PrimaryConnection."""

    async def connect_to(self, address: Any) -> None:
        await super().connect_to(address)  # type: ignore[no-untyped-call]
        if self.connection_pool.is_master:
            await self.send_command("ROLE")
            error = _refusal(await self.read_response(), address)
            if error is not None:
                await self.disconnect()
                raise error
