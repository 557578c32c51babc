"""Atomic, shared thread registry on Redis: call chains <-> opaque thread ids.

Every operation is one server-side Lua script, so both directions change together for
every process and host; idle threads expire by TTL.
"""

from .client import ThreadRegistry
from .default import get_registry, reset_registry
from .errors import (
    DurabilityError,
    InvalidConfigError,
    InvalidHopError,
    InvalidNamespaceError,
    InvalidThreadIdError,
    RegistryError,
    RootConflictError,
)
from .operations import ThreadInfo

__all__ = [
    "DurabilityError",
    "InvalidConfigError",
    "InvalidHopError",
    "InvalidNamespaceError",
    "InvalidThreadIdError",
    "RegistryError",
    "RootConflictError",
    "ThreadInfo",
    "ThreadRegistry",
    "get_registry",
    "reset_registry",
]
