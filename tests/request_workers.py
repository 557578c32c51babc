"""Worker processes for tests/test_identity.py (a plain module, so 'spawn' can import it).

Each worker plays many requests that all follow the same path, console -> router ->
calculator.add, each with a thread of its own (request_hop), interleaved with the other
workers' requests, and records every answer that did not come back to its own request.
"""

from __future__ import annotations

import traceback
from typing import Any

from registry import ThreadRegistry, UnknownThreadError, listener_of, request_hop


def play_requests(plan: dict[str, Any], barrier: Any, results: Any, index: int) -> None:
    try:
        reg = ThreadRegistry.from_url(plan["url"], namespace=plan["namespace"], strict=True)
        root = reg.initialize_root("acme")
        barrier.wait()
        wrong: list[str] = []
        for n in range(plan["requests"]):
            tag = f"w{index}-{n}"
            console = reg.extend_chain(root, request_hop("console", tag))
            router = reg.extend_chain(console, "router")
            service = reg.extend_chain(router, "calculator.add")
            try:
                back_to_router = reg.prune_for_response(service, drop=True)
                back_to_console = reg.prune_for_response(back_to_router.thread_id or "", drop=True)
            except UnknownThreadError as exc:
                wrong.append(f"{tag}: lost ({exc})")
                continue
            if back_to_router != ("router", router):
                wrong.append(f"{tag}: service answered to {back_to_router}, not the router {router}")
            target = back_to_console.target or ""
            if (
                back_to_console.thread_id != console
                or target != f"console#{tag}"
                or listener_of(target) != "console"
            ):
                wrong.append(f"{tag}: router answered to {back_to_console}, not console#{tag} {console}")
            reg.cleanup(console)  # the request is answered: its first thread goes too
        reg.close()
        results.put((index, wrong))
    except Exception:
        results.put((index, traceback.format_exc()))
