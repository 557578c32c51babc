"""Per-request threads: the identity model's helpers.

One chain has one id. Concurrent requests that follow the same path share the same
threads, so removing one of them when an answer arrives would cut the others off. A
bus that wants a thread per request gives each request its own chain: a first hop of
its own, ``console#<tag>``, below which every hop the request takes is private to it.
"""

from __future__ import annotations

import os

from .errors import InvalidHopError
from .validation import check_hop

TAG_MARK = "#"


def request_hop(listener: str, tag: str | None = None) -> str:
    """The hop ``<listener>#<tag>`` that gives one request a chain of its own.

    Args:
        listener: the name the answer is routed to (it may not contain ``#``).
        tag: the request's own tag (a request id, a nonce); random (96 bits) if None.

    Returns:
        The hop, to pass to ``extend_chain`` (or ``start_chain``) when the request starts.

    Raises:
        InvalidHopError: a listener with ``#``, or a hop that breaks the hop rules.
    """
    check_hop(listener, "listener")
    if TAG_MARK in listener:
        raise InvalidHopError(
            f"listener {listener!r} contains {TAG_MARK!r}; request hops use it to mark their tag"
        )
    tag = os.urandom(12).hex() if tag is None else check_hop(tag, "request tag")
    return check_hop(f"{listener}{TAG_MARK}{tag}", "request hop")


def listener_of(hop: str) -> str:
    """The listener a hop routes to: the part before ``#`` (the hop itself if none).

    ``listener_of(route.target)`` is where an answer goes when requests carry tags.
    """
    return hop.partition(TAG_MARK)[0]
