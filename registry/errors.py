"""Exceptions, and the mapping from the scripts' error codes to them."""

from __future__ import annotations


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


class RootConflictError(RegistryError):
    """The namespace (or table) already has a root for another organism."""


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
}


def from_script_error(message: str) -> RegistryError | None:
    """The exception for a script's error reply, or None if it is not one of ours."""
    code, _, text = message.partition(" ")
    cls = _BY_CODE.get(code)
    if cls is None:
        return None
    return cls(text)
