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


class ScriptReplyError(RegistryError):
    """A script answered with an error this client does not know."""


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
