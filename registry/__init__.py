"""Atomic, shared thread registry on Redis: call chains <-> opaque thread ids.

Every operation is one server-side Lua script, so both directions change together for
every process and host; idle threads expire by TTL.
"""

from .check import CheckResult, Problem
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
    LayoutVersionError,
    OutcomeUnknownError,
    RegistryError,
    RootConflictError,
    ThreadIdConflictError,
    UnknownThreadError,
)
from .identity import listener_of, request_hop
from .operations import Route, ThreadInfo
from .stats import ServerFacts, Stats

__all__ = [
    "NOT_RUN",
    "UNKNOWN",
    "BatchOrderError",
    "CheckResult",
    "DurabilityError",
    "InvalidConfigError",
    "InvalidHopError",
    "InvalidNamespaceError",
    "InvalidThreadIdError",
    "LayoutVersionError",
    "OutcomeUnknownError",
    "Problem",
    "RegistryError",
    "RootConflictError",
    "Route",
    "ServerFacts",
    "Stats",
    "ThreadIdConflictError",
    "ThreadInfo",
    "ThreadRegistry",
    "UnknownThreadError",
    "get_registry",
    "listener_of",
    "request_hop",
    "reset_registry",
]
