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

They also ask the Sentinels on every reconnect. redis-py (since 6.x) reconnects a dropped
connection from ``send_packed_command`` through ``connect_check_health``, to the address
the connection last had, without asking the Sentinels (redis/redis-py#3874): a call that
redis-py retries after a failover reaches the old primary's address again, and when that
server is back as a replica, still syncing, a read there answers from missing data. Seen in
tests/test_failover.py (kill -9 of the primary under load, the old primary restarted): a
lookup of an acknowledged thread answered None. Here every reconnect goes through
``connect()``, which asks the Sentinels, then checks the ROLE.
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
    """A Sentinel-managed connection that is only kept when it reached a primary, and
    that asks the Sentinels where the primary is on every reconnect."""

    _opening = False  # set while connect_to opens the socket at the address it was given

    def connect_check_health(self, *args: Any, **kwargs: Any) -> None:
        if self._opening or self._sock is not None:
            super().connect_check_health(*args, **kwargs)
        else:  # a reconnect (redis-py's retry of a call): ask the Sentinels first
            self.connect()  # type: ignore[no-untyped-call]

    def connect_to(self, address: Any) -> None:
        self._opening = True
        try:
            super().connect_to(address)  # type: ignore[no-untyped-call]
        finally:
            self._opening = False
        if self.connection_pool.is_master:
            self.send_command("ROLE")  # type: ignore[no-untyped-call]
            error = _refusal(self.read_response(), address)
            if error is not None:
                self.disconnect()  # type: ignore[no-untyped-call]
                raise error


class AsyncPrimaryConnection(redis.asyncio.sentinel.SentinelManagedConnection):
    """The asyncio twin of PrimaryConnection."""

    _opening = False

    async def connect_check_health(self, *args: Any, **kwargs: Any) -> None:
        if self._opening or self.is_connected:
            await super().connect_check_health(*args, **kwargs)
        else:
            await self.connect()  # type: ignore[no-untyped-call]

    async def connect_to(self, address: Any) -> None:
        self._opening = True
        try:
            await super().connect_to(address)  # type: ignore[no-untyped-call]
        finally:
            self._opening = False
        if self.connection_pool.is_master:
            await self.send_command("ROLE")
            error = _refusal(await self.read_response(), address)
            if error is not None:
                await self.disconnect()
                raise error
