"""The process-wide registry: get_registry() / reset_registry(), and the embedded backend."""

from __future__ import annotations

import os
import threading
from typing import Any

from .client import ThreadRegistry
from .errors import RegistryError
from .operations import DEFAULT_TTL

URL_ENV = "THREAD_REGISTRY_URL"

_lock = threading.Lock()
_instance: ThreadRegistry | None = None


def embedded_client() -> Any:
    """An in-process fakeredis server with Lua: the default when no Redis is given."""
    try:
        import fakeredis
    except ImportError:  # pragma: no cover - depends on the install
        raise RegistryError(
            "the embedded backend needs fakeredis with Lua: pip install 'redis-thread-registry[embedded]'"
        ) from None
    return fakeredis.FakeRedis()


def get_registry(
    client: Any = None,
    *,
    url: str | None = None,
    namespace: str = "default",
    ttl: float | None = DEFAULT_TTL,
) -> ThreadRegistry:
    """The process-wide registry, created on the first call.

    The first call decides the backend: `client`, else `url`, else the URL in
    $THREAD_REGISTRY_URL, else the embedded in-process backend. Later calls return the
    same instance and ignore their arguments.
    """
    global _instance
    with _lock:
        if _instance is None:
            url = url or os.environ.get(URL_ENV)
            if client is None and url:
                _instance = ThreadRegistry.from_url(url, namespace=namespace, ttl=ttl)
            else:
                _instance = ThreadRegistry(client or embedded_client(), namespace=namespace, ttl=ttl)
        return _instance


def reset_registry() -> None:
    """Clear the process-wide registry's namespace and drop the instance."""
    global _instance
    with _lock:
        if _instance is not None:
            _instance.clear()
            _instance = None
