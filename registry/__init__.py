"""Atomic, shared thread registry on Redis: call chains <-> opaque thread ids.

Every operation is one server-side Lua script, so both directions change together for
every process and host; idle threads expire by TTL.
"""

from .client import ThreadRegistry
from .default import get_registry, reset_registry
from .errors import (
    NOT_RUN,
    UNKNOWN,
    BatchOrderError,
    DurabilityError,
    InvalidConfigError,
    InvalidHopError,
    InvalidNamespaceError,
    InvalidThreadIdError,
    OutcomeUnknownError,
    RegistryError,
    RootConflictError,
    ThreadIdConflictError,
    UnknownThreadError,
)
from .identity import listener_of, request_hop
from .operations import Route, ThreadInfo

__all__ = [
    "NOT_RUN",
    "UNKNOWN",
    "BatchOrderError",
    "DurabilityError",
    "InvalidConfigError",
    "InvalidHopError",
    "InvalidNamespaceError",
    "InvalidThreadIdError",
    "OutcomeUnknownError",
    "RegistryError",
    "RootConflictError",
    "Route",
    "ThreadIdConflictError",
    "ThreadInfo",
    "ThreadRegistry",
    "UnknownThreadError",
    "get_registry",
    "listener_of",
    "request_hop",
    "reset_registry",
]
