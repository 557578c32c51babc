"""What the sync and async registries share: construction and the properties."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Self

from . import telemetry
from .errors import InvalidConfigError
from .operations import DEFAULT_TTL, Operations
from .transport import Durability


@dataclass(frozen=True)
class ClientKinds:
    """The redis-py classes one flavour (sync or asyncio) connects with."""

    standalone: Any
    cluster: Any
    sentinel: Any
    retry: Any
    backoff: Any
    primary_connection: Any  # from_sentinel's connections: checked to reach a primary


class RegistryBase:
    """Construction and properties shared by ThreadRegistry and AsyncThreadRegistry.

    Holds the client, the Operations (namespace, ttl, root as known here) and the
    transport that sends them (the subclass says which, and which clients it uses).
    """

    _transport_class: ClassVar[type[Any]]
    _clients: ClassVar[ClientKinds]

    def __init__(
        self,
        client: Any,
        *,
        namespace: str = "default",
        ttl: float | None = DEFAULT_TTL,
        wait_replicas: int = 0,
        wait_timeout_ms: int = 1000,
        retry_seconds: float | None = None,
        strict: bool = False,
        meter_provider: Any = None,
        tracer_provider: Any = None,
    ) -> None:
        """A registry for one namespace on `client`.

        Args:
            client: a redis-py (or fakeredis) client: standalone, cluster or Sentinel-managed.
            namespace: 1 to 64 of ``A-Z a-z 0-9 _ - . :``; namespaces never see each other.
            ttl: idle seconds before a thread expires (0.001 s to ten years); None: never.
            wait_replicas: replicas every write waits for (``WAIT``); 0: none.
            wait_timeout_ms: how long a write waits for them before DurabilityError.
            retry_seconds: how long calls retry through a failover (default: 20 on
                Cluster and Sentinel clients, 0 on a single server).
            strict: ``extend_chain`` and ``prune_for_response`` on an unknown or expired
                id raise UnknownThreadError instead of making a one-hop chain or
                answering ``Route(None, None)``. Recommended for new code.
            meter_provider, tracer_provider: OpenTelemetry providers to record through
                (default: the global ones when the API is installed; see telemetry.py).

        Raises:
            InvalidNamespaceError: a bad namespace.
            InvalidConfigError: a bad ttl, wait setting or strict flag.
        """
        self._ops = Operations(namespace, ttl, strict)
        self._client = client
        self._durability = durability(wait_replicas, wait_timeout_ms)
        self._transport = self._transport_class(client, self._ops.keys, self._durability, retry_seconds)
        self._sentinel: Any = None  # the Sentinel object from_sentinel made, closed with the registry
        self._telemetry = telemetry.attach(self, meter_provider, tracer_provider)

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        namespace: str = "default",
        ttl: float | None = DEFAULT_TTL,
        cluster: bool = False,
        wait_replicas: int = 0,
        wait_timeout_ms: int = 1000,
        retry_seconds: float | None = None,
        strict: bool = False,
        meter_provider: Any = None,
        tracer_provider: Any = None,
        **kwargs: Any,
    ) -> Self:
        """A registry on ``Redis.from_url(url, **kwargs)`` (``redis://``, ``rediss://``,
        ``unix://``; AUTH/ACL user in the URL), or with ``cluster=True`` on
        ``RedisCluster.from_url``.

        The other arguments are the constructor's. `kwargs` go to redis-py
        (``max_connections``, ``socket_timeout``, ``ssl_ca_certs``, ...). Calls beyond
        the pool's ``max_connections`` (100 by default) wait for a free connection
        instead of failing.
        """
        kind = cls._clients.cluster if cluster else cls._clients.standalone
        return cls(
            kind.from_url(url, **kwargs),
            namespace=namespace,
            ttl=ttl,
            wait_replicas=wait_replicas,
            wait_timeout_ms=wait_timeout_ms,
            retry_seconds=retry_seconds,
            strict=strict,
            meter_provider=meter_provider,
            tracer_provider=tracer_provider,
        )

    @classmethod
    def from_sentinel(
        cls,
        sentinels: list[tuple[str, int]],
        service_name: str,
        *,
        namespace: str = "default",
        ttl: float | None = DEFAULT_TTL,
        wait_replicas: int = 0,
        wait_timeout_ms: int = 1000,
        retry_seconds: float | None = None,
        strict: bool = False,
        meter_provider: Any = None,
        tracer_provider: Any = None,
        sentinel_kwargs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> Self:
        """A registry on the primary the Sentinels name for `service_name`; it follows the
        primary across failovers.

        Args:
            sentinels: ``(host, port)`` of each Sentinel.
            service_name: the monitored primary's name (``sentinel monitor NAME ...``).
            sentinel_kwargs: for the connections to the Sentinels (password, ssl, ...).
            kwargs: for the primary's connections (password, ssl, socket_timeout, retry, ...).

        The other arguments are the constructor's.
        """
        # master_for() connections get no retries of their own; after a failover the
        # first call on each pooled connection would fail. Retry, with backoff.
        kwargs.setdefault("retry", cls._clients.retry(cls._clients.backoff(cap=0.5, base=0.05), 12))
        sentinel = cls._clients.sentinel(sentinels, sentinel_kwargs=sentinel_kwargs, **kwargs)
        registry = cls(
            sentinel.master_for(service_name, connection_class=cls._clients.primary_connection),
            namespace=namespace,
            ttl=ttl,
            wait_replicas=wait_replicas,
            wait_timeout_ms=wait_timeout_ms,
            retry_seconds=retry_seconds,
            strict=strict,
            meter_provider=meter_provider,
            tracer_provider=tracer_provider,
        )
        registry._sentinel = sentinel
        return registry

    @property
    def client(self) -> Any:
        """The redis-py (or fakeredis) client this registry talks through."""
        return self._client

    @property
    def namespace(self) -> str:
        """The namespace this registry reads and writes, and only it."""
        return self._ops.namespace

    @property
    def strict(self) -> bool:
        """Whether unknown ids raise UnknownThreadError (see the constructor)."""
        return self._ops.strict

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
        strict = ", strict=True" if self.strict else ""
        return f"{type(self).__name__}(namespace={self.namespace!r}, ttl={self.ttl!r}{strict})"


def share_docs(twin: type, original: type) -> None:
    """Gives each public method of `twin` without a docstring the one of `original`'s
    method of the same name (the async class documents its coroutines this way)."""
    for name, member in vars(twin).items():
        if name.startswith("_") or not callable(member) or member.__doc__:
            continue
        doc = getattr(getattr(original, name, None), "__doc__", None)
        if doc:
            member.__doc__ = f"{doc.rstrip()}\n\n        A coroutine: ``await`` it.\n"


def durability(wait_replicas: object, wait_timeout_ms: object) -> Durability | None:
    """Checks the acknowledged-write settings; None when writes do not wait."""
    if isinstance(wait_replicas, bool) or not isinstance(wait_replicas, int) or wait_replicas < 0:
        raise InvalidConfigError(f"wait_replicas {wait_replicas!r} must be an int >= 0")
    if isinstance(wait_timeout_ms, bool) or not isinstance(wait_timeout_ms, int) or wait_timeout_ms < 1:
        raise InvalidConfigError(
            f"wait_timeout_ms {wait_timeout_ms!r} must be an int >= 1 (WAIT with 0 would block forever)"
        )
    return Durability(wait_replicas, wait_timeout_ms) if wait_replicas else None
