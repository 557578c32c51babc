"""What each listener does with a message: pure decisions, no I/O.

A listener either forwards a request one hop further (`Forward`), answers the thread
the message came on (`Answer`), or refuses a message that should never have reached it
(`Misrouted`). Where the message goes and on which thread is the routing's business
(registry.pipeline.routing); a listener never sees a chain.

- ``router``: a request goes to the service it names; an answer goes back up.
- ``calculator.add``: answers ``a + b`` at once.
- ``echo``: answers at once with the text and the path the registry holds for its
  thread (``lookup_hops``), which the console checks.
- ``planner``: asks ``calculator.add`` for ``a + b``, then answers twice that.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..identity import listener_of
from .wire import ADD, CONSOLE, ECHO, PLANNER, ROUTER, SERVICES

REQUEST = "req"
ANSWER = "ans"


@dataclass(frozen=True)
class Forward:
    """Extend the message's thread by `hop` and send `payload` to that listener."""

    hop: str
    payload: dict[str, Any]


@dataclass(frozen=True)
class Answer:
    """Answer the message's thread: `payload` goes to the hop that asked."""

    payload: dict[str, Any]
    needs_path: bool = False  # read the thread's hops first (lookup_hops), into "path"


@dataclass(frozen=True)
class Misrouted:
    """A message this listener cannot have been sent: counted, acknowledged, dropped."""

    reason: str


Action = Forward | Answer | Misrouted


def act(listener: str, payload: dict[str, Any]) -> Action:
    """What `listener` does with one message's payload."""
    kind = payload.get("k")
    if kind == ANSWER:
        # The hop that answered wrote where the registry said the answer goes ("to").
        if listener_of(str(payload.get("to", ""))) != listener:
            return Misrouted(f"an answer for {payload.get('to')!r} reached {listener}")
        if listener == ROUTER:
            return Answer(_up(payload))
        if listener == PLANNER:
            return Answer(_up(payload, result=2 * int(payload["r"])))
        return Misrouted(f"{listener} asks nobody, yet an answer reached it")
    if kind != REQUEST:
        return Misrouted(f"{listener} got a message of kind {kind!r}")
    if listener == ROUTER:
        service = payload.get("svc")
        if service not in SERVICES:
            return Misrouted(f"router got a request for unknown service {service!r}")
        return Forward(str(service), payload)
    if listener == ADD:
        return Answer(_up(payload, result=int(payload["a"]) + int(payload["b"])))
    if listener == ECHO:
        return Answer(_up(payload, result=payload["s"]), needs_path=True)
    if listener == PLANNER:
        return Forward(ADD, payload)
    return Misrouted(f"{listener} serves no requests")


def _up(payload: dict[str, Any], result: Any = None) -> dict[str, Any]:
    """The answer's payload: the request's fields (nonce, index, arguments) and a result."""
    out = dict(payload, k=ANSWER)
    if result is not None:
        out["r"] = result
    return out


def expected(payload: dict[str, Any]) -> Any:
    """The result the console expects for a request it made."""
    service = payload["svc"]
    if service == ADD:
        return int(payload["a"]) + int(payload["b"])
    if service == PLANNER:
        return 2 * (int(payload["a"]) + int(payload["b"]))
    return payload["s"]


def expected_path(organism: str, request_hop: str, service: str) -> list[str]:
    """The hops an echo request's thread has when echo answers it."""
    return ["system", organism, request_hop, ROUTER, service]


__all__ = [
    "ANSWER",
    "CONSOLE",
    "REQUEST",
    "Action",
    "Answer",
    "Forward",
    "Misrouted",
    "act",
    "expected",
    "expected_path",
]
