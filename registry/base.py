"""What the sync and async registries share: construction and the properties."""

from __future__ import annotations

from typing import Any

from .errors import InvalidConfigError
from .operations import DEFAULT_TTL, Operations
from .transport import Durability


class RegistryBase:
    """Holds the client and the Operations (namespace, ttl, root as known here)."""

    def __init__(
        self,
        client: Any,
        *,
        namespace: str = "default",
        ttl: float | None = DEFAULT_TTL,
        wait_replicas: int = 0,
        wait_timeout_ms: int = 1000,
    ) -> None:
        self._ops = Operations(namespace, ttl)
        self._client = client
        self._durability = durability(wait_replicas, wait_timeout_ms)

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

    @property
    def wait_replicas(self) -> int:
        """Replicas every write waits for (WAIT); 0: writes are acknowledged by the primary alone."""
        return 0 if self._durability is None else self._durability.replicas

    def __repr__(self) -> str:
        return f"{type(self).__name__}(namespace={self.namespace!r}, ttl={self.ttl!r})"


def durability(wait_replicas: object, wait_timeout_ms: object) -> Durability | None:
    """Checks the acknowledged-write settings; None when writes do not wait."""
    if isinstance(wait_replicas, bool) or not isinstance(wait_replicas, int) or wait_replicas < 0:
        raise InvalidConfigError(f"wait_replicas {wait_replicas!r} must be an int >= 0")
    if isinstance(wait_timeout_ms, bool) or not isinstance(wait_timeout_ms, int) or wait_timeout_ms < 1:
        raise InvalidConfigError(
            f"wait_timeout_ms {wait_timeout_ms!r} must be an int >= 1 (WAIT with 0 would block forever)"
        )
    return Durability(wait_replicas, wait_timeout_ms) if wait_replicas else None
