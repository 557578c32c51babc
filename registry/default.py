"""The process-wide registry: get_registry() / reset_registry(), and the embedded backend."""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

from .client import ThreadRegistry
from .errors import RegistryError
from .operations import DEFAULT_TTL

URL_ENV = "THREAD_REGISTRY_URL"

_lock = threading.Lock()
_instance: ThreadRegistry | None = None
_settings: dict[str, Any] = {}  # what the first call decided, to compare later calls with
_warned_embedded = False
_UNSET: Any = object()
log = logging.getLogger("registry")


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
    client: Any = _UNSET,
    *,
    url: str | None = _UNSET,
    namespace: str = _UNSET,
    ttl: float | None = _UNSET,
    strict: bool = _UNSET,
) -> ThreadRegistry:
    """The process-wide registry, created on the first call.

    The first call decides the backend: `client`, else `url`, else the URL in
    $THREAD_REGISTRY_URL, else the embedded in-process backend (private to this
    process: a warning says so, once). Later calls return the same instance; one that
    names an argument with another value than the first call used raises RegistryError
    naming both (call reset_registry() first to start over). `namespace`, `ttl` and
    `strict` are the ThreadRegistry constructor's (strict is recommended for new code).

    Raises:
        RegistryError: a later call asks for other settings than the first one used.
    """
    global _instance
    given = {
        name: value
        for name, value in (
            ("client", client),
            ("url", url),
            ("namespace", namespace),
            ("ttl", ttl),
            ("strict", strict),
        )
        if value is not _UNSET
    }
    with _lock:
        if _instance is None:
            _instance = _create(given)
            return _instance
        for name, value in given.items():
            first = _settings.get(name)
            if value is not first and value != first:
                raise RegistryError(
                    f"get_registry({name}={value!r}) differs from the first call's {name}={first!r}; "
                    "the process-wide registry is already made (reset_registry() drops it)"
                )
        return _instance


def _create(given: dict[str, Any]) -> ThreadRegistry:
    global _warned_embedded
    client = given.get("client")
    url = given.get("url") or os.environ.get(URL_ENV)
    namespace = given.get("namespace", "default")
    ttl = given.get("ttl", DEFAULT_TTL)
    strict = given.get("strict", False)
    if client is None and url:
        instance = ThreadRegistry.from_url(url, namespace=namespace, ttl=ttl, strict=strict)
    else:
        if client is None:
            client = embedded_client()
            if not _warned_embedded:
                _warned_embedded = True
                log.warning(
                    "get_registry(): no client, url or $%s given, so the registry is the embedded "
                    "in-process backend: private to this process (child processes and other hosts "
                    "do not see its threads)",
                    URL_ENV,
                )
        instance = ThreadRegistry(client, namespace=namespace, ttl=ttl, strict=strict)
    _settings.clear()
    _settings.update(client=client, url=given.get("url"), namespace=namespace, ttl=ttl, strict=strict)
    return instance


def reset_registry() -> None:
    """Clear the process-wide registry's namespace and drop the instance."""
    global _instance
    with _lock:
        if _instance is not None:
            _instance.clear()
            _instance = None
            _settings.clear()
