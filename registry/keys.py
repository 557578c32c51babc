"""Key names. Every key of a namespace carries the hash tag {namespace}, so all of a
namespace's keys live in one cluster slot and every script can declare all it touches."""

from __future__ import annotations

PREFIX = "threadreg"


def namespace_keys(namespace: str) -> tuple[str, str, str]:
    """(meta, threads, overrides) of a namespace; the order the scripts expect in KEYS."""
    tag = f"{PREFIX}:{{{namespace}}}"
    return f"{tag}:meta", f"{tag}:threads", f"{tag}:overrides"
