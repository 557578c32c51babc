"""The machine, the versions, and the redis-server the run uses."""

from __future__ import annotations

import datetime as dt
import os
import platform
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import metadata
from typing import Any

import redis


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def machine_info(client: redis.Redis) -> dict[str, Any]:
    server = client.info("server")
    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "cores": os.cpu_count(),
        "cpu_model": cpu_model(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "redis_py": redis.__version__,
        "hiredis": _version("hiredis"),
        "redis_server": server.get("redis_version"),
        "redis_mode": server.get("redis_mode"),
        "load_average": list(os.getloadavg()),
    }


@contextmanager
def redis_url(url: str | None) -> Iterator[tuple[str, bool]]:
    """Yields (url, owned). With no url, starts a throwaway redis-server on a free port (never 6379)."""
    if url:
        yield url, False
        return
    from tests.servers import RedisServer  # the project's launcher: a temp dir, persistence off

    with RedisServer() as server:
        yield server.url, True


def make_client(url: str) -> redis.Redis:
    """The client every contender uses: redis-py's default (hiredis parser when installed)."""
    return redis.Redis.from_url(url)
