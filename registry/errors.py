"""Exceptions, and the mapping from the scripts' error codes to them."""

from __future__ import annotations

from redis.exceptions import ConnectionError as RedisConnectionError


class RegistryError(Exception):
    """Base class of every error this library raises itself."""


class InvalidHopError(RegistryError, ValueError):
    """A hop or chain breaks a rule (length, control characters, depth)."""


class InvalidNamespaceError(InvalidHopError):
    """A namespace breaks the naming rule."""


class InvalidThreadIdError(RegistryError, ValueError):
    """A thread id given to bind is not a UUID string."""


class InvalidConfigError(RegistryError, ValueError):
    """A constructor argument (ttl, namespace type, ...) is out of range."""


class UnknownThreadError(RegistryError, LookupError):
    """Strict mode: ``extend_chain`` or ``prune_for_response`` with an id that names no
    live thread (never bound, expired, cleaned up, or lost with a reset namespace).

    Raised instead of making a one-hop chain or answering ``(None, None)``; decided in
    the same script run, so nothing is written. ``thread_id`` is the id as given.
    """

    def __init__(self, message: str, thread_id: str | None = None) -> None:
        super().__init__(message)
        self.thread_id = thread_id


class RootConflictError(RegistryError):
    """The namespace (or table) already has a root for another organism."""


class ThreadIdConflictError(RegistryError):
    """``register_thread`` with an id that is already bound to another chain.

    Returning that id would route the new chain's traffic to the old one, so nothing
    is bound and nothing is written.
    """


class OutcomeUnknownError(RegistryError, RedisConnectionError):
    """The connection was lost after a request was sent and before all its replies came.

    Raised instead of re-sending when a re-send could change the outcome: a removal
    (``cleanup``, ``clear``, a ``prune_for_response`` that may remove a one-hop chain)
    or a batch holding one, since another client may have re-created the removed
    chain in between. ``results`` holds, in order, each operation's result where its
    reply arrived and ``UNKNOWN`` where it did not; ``unknown`` lists those positions.
    Each of those operations ran once or not at all. Reads are safe to repeat: look the
    affected ids up, then repeat what is still needed. It is also a redis-py
    ``ConnectionError``, which code written for lost connections already catches.
    """

    def __init__(self, message: str, results: list[object], unknown: tuple[int, ...]) -> None:
        super().__init__(message)
        self.results = results
        self.unknown = unknown


class BatchOrderError(RegistryError):
    """A batch could not keep its order: an operation failed to run (its script had
    been flushed from the server, or its slot moved) while later operations of the
    same round had already run. Nothing is re-sent out of order. ``results`` holds
    what ran (``NOT_RUN`` for the operations that did not); ``not_run`` lists them.
    Reads are safe to repeat; decide what to send again from the current state.
    """

    def __init__(self, message: str, results: list[object], not_run: tuple[int, ...]) -> None:
        super().__init__(message)
        self.results = results
        self.not_run = not_run


class _Marker:
    def __init__(self, name: str) -> None:
        self._name = name

    def __repr__(self) -> str:
        return self._name


UNKNOWN: object = _Marker("UNKNOWN")  # a result whose reply was lost (OutcomeUnknownError)
NOT_RUN: object = _Marker("NOT_RUN")  # an operation a batch could not run in order (BatchOrderError)


class DurabilityError(RegistryError):
    """Fewer replicas than ``wait_replicas`` acknowledged a write in ``wait_timeout_ms``.

    The write is applied on the primary (and may still reach the replicas); it may be
    lost if the primary fails before it does. Retrying the same call is safe.
    ``results`` holds what the call (or batch) returned.
    """

    def __init__(self, message: str, acknowledged: int, results: list[object]) -> None:
        super().__init__(message)
        self.acknowledged = acknowledged
        self.results = results


_BY_CODE: dict[str, type[RegistryError]] = {
    "BADHOP": InvalidHopError,
    "BADCHAIN": InvalidHopError,
    "BADID": InvalidThreadIdError,
    "BADARG": InvalidConfigError,
    "ROOTCONFLICT": RootConflictError,
    "TABLECONFLICT": RootConflictError,
    "IDCONFLICT": ThreadIdConflictError,
    "UNKNOWNID": UnknownThreadError,
}


def from_script_error(message: str) -> RegistryError | None:
    """The exception for a script's error reply, or None if it is not one of ours."""
    code, _, text = message.partition(" ")
    cls = _BY_CODE.get(code)
    if cls is None:
        return None
    if cls is UnknownThreadError:
        return UnknownThreadError(text, text.split(" ", 3)[2] if text.startswith("thread id ") else None)
    return cls(text)
