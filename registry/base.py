"""What the sync and async registries share: construction and the properties."""

from __future__ import annotations

from typing import Any

from .operations import DEFAULT_TTL, Operations


class RegistryBase:
    """Holds the client and the Operations (namespace, ttl, root as known here)."""

    def __init__(self, client: Any, *, namespace: str = "default", ttl: float | None = DEFAULT_TTL) -> None:
        self._ops = Operations(namespace, ttl)
        self._client = client

    @property
    def client(self) -> Any:
        """The redis-py (or fakeredis) client this registry talks through."""
        return self._client

    @property
    def namespace(self) -> str:
        return self._ops.namespace

    @property
    def ttl(self) -> float | None:
        """Idle seconds before a non-root thread expires; None: never."""
        return None if self._ops.ttl_ms is None else self._ops.ttl_ms / 1000

    @property
    def root_uuid(self) -> str | None:
        """The namespace's root id as this instance knows it (after initialize_root)."""
        return self._ops.root_uuid

    @property
    def root_chain(self) -> str:
        """``system.<organism>`` after initialize_root, ``system`` before."""
        return self._ops.root_chain

    @property
    def is_shared(self) -> bool:
        """Always True: the state lives in Redis, shared by every process and host."""
        return True

    def __repr__(self) -> str:
        return f"{type(self).__name__}(namespace={self.namespace!r}, ttl={self.ttl!r})"
