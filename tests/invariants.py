"""Checks of the contract's invariants that several test files share.

SPEC 4.1: one chain, one id. For every live mapping (id, chain) the registry reports,
asking for that chain gives that id back, and looking the id up gives that chain.
"""

from __future__ import annotations

from registry import ThreadRegistry


def assert_one_chain_one_id(reg: ThreadRegistry) -> dict[str, str]:
    """Check SPEC 4.1 on every live mapping of `reg`'s namespace; returns the dump checked.

    The hops come from `lookup_hops` (hops may contain dots, so the dotted chain of
    `debug_dump` cannot be split back). `get_or_create` only touches an existing mapping,
    so the dump is the same after the check.
    """
    dump = reg.debug_dump()
    for thread_id, chain in dump.items():
        hops = reg.lookup_hops(thread_id)
        assert hops is not None, f"{thread_id} is in debug_dump but lookup_hops finds nothing"
        assert ".".join(hops) == chain, f"{thread_id}: lookup_hops {hops!r} disagrees with dump {chain!r}"
        assert reg.lookup(thread_id) == chain, f"{thread_id}: lookup disagrees with debug_dump {chain!r}"
        again = reg.get_or_create(list(hops))
        assert again == thread_id, f"chain {hops!r} maps to {again} but debug_dump says {thread_id}"
    assert reg.debug_dump() == dump, "checking the invariant changed the namespace's mappings"
    return dump


# ---------------------------------------------------------------- raw keys (appended by the race tests)

RAW_SEP = b"\x1f"  # joins hops in storage (registry/validation.py SEP)


def _raw_hops(value: bytes) -> tuple[str, ...]:
    return tuple(hop.decode("utf-8") for hop in value.split(RAW_SEP))


def raw_mappings(reg: ThreadRegistry) -> tuple[dict[str, tuple[str, ...]], dict[str, tuple[str, ...]]]:
    """(live, expired) mappings read straight from the namespace's keys: id -> hops.

    Layout (lua/_core.lua): threads hash id -> 6-byte big-endian deadline (ms) + chain
    (and floors, NUL + chain -> deadline, which are not mappings); permanent mappings in
    meta as 'P<id>' -> chain. Needs a client that returns bytes.
    """
    from registry.keys import namespace_keys

    meta_key, threads_key, _ = namespace_keys(reg.namespace)
    client = reg.client
    seconds, micros = client.time()
    now_ms = int(seconds) * 1000 + int(micros) // 1000
    live: dict[str, tuple[str, ...]] = {}
    expired: dict[str, tuple[str, ...]] = {}
    for raw_id, value in client.hgetall(threads_key).items():
        assert isinstance(value, bytes), "raw_mappings needs a client without decode_responses"
        if raw_id == b"":
            assert value == b"", f"the placeholder field holds {value!r}"
            continue  # the placeholder that keeps the key present (lua/_write.lua ensure_keys)
        if raw_id.startswith(b"\0"):
            assert len(value) == 6, f"floor {raw_id!r} holds {value!r}, not a 6-byte deadline"
            continue  # a floor: the deadline a mapping of that chain must start with
        tid = raw_id.decode()
        deadline = int.from_bytes(value[:6], "big")
        (live if deadline > now_ms else expired)[tid] = _raw_hops(value[6:])
    for name, value in client.hgetall(meta_key).items():
        if name.startswith(b"P"):
            tid = name[1:].decode()
            assert tid not in live, f"{tid} is both an expiring and a permanent mapping"
            live[tid] = _raw_hops(value)
    return live, expired


def assert_raw_keys_consistent(reg: ThreadRegistry, *, reachable: bool = True) -> dict[str, tuple[str, ...]]:
    """Nothing orphaned or doubled in the namespace's raw keys; returns the live mappings.

    - each chain has at most one live id;
    - every override (overrides hash, and 'Q<chain>' in meta) points at a live mapping
      whose chain is that field (an override of an expired, not yet swept mapping is
      tolerated: it is garbage the sweep reclaims);
    - the root pointer and every table-root pointer ('T<table>') name a live permanent
      mapping of the right shape;
    - meta holds no field this layout does not know;
    - with `reachable`, every live mapping is found again: get_or_create(its hops) returns
      its id (a write: it touches the mapping's deadline, and creates nothing if it holds).
    """
    from registry.keys import namespace_keys

    meta_key, _, overrides_key = namespace_keys(reg.namespace)
    client = reg.client
    live, expired = raw_mappings(reg)
    meta = client.hgetall(meta_key)
    permanent = {name[1:].decode() for name in meta if name.startswith(b"P")}

    by_chain: dict[tuple[str, ...], str] = {}
    for tid, hops in live.items():
        other = by_chain.setdefault(hops, tid)
        assert other == tid, f"chain {hops!r} has two live ids: {other} and {tid}"

    def check_override(where: str, chain: bytes, target: bytes) -> None:
        hops, tid = _raw_hops(chain), target.decode()
        if tid in expired and expired[tid] == hops:
            return
        assert live.get(tid) == hops, f"{where} {hops!r} -> {tid}, which is {live.get(tid)!r}"

    overrides = client.hgetall(overrides_key)
    threads_key = overrides_key.replace(":overrides", ":threads")
    assert client.exists(threads_key) == client.exists(overrides_key), "threads and overrides exist together"
    for chain, target in overrides.items():
        if chain == b"":
            continue  # the placeholder
        check_override("override", chain, target)
    for name, value in meta.items():
        if name.startswith(b"Q") and value == b"":
            # a permanent floor: only where the chain has no mapping
            hops = _raw_hops(name[1:])
            assert hops not in by_chain, f"permanent floor for {hops!r}, which has mapping {by_chain[hops]}"
        elif name.startswith(b"Q"):
            check_override("meta override", name[1:], value)
        elif name == b"root":
            tid = value.decode()
            assert tid in permanent, f"root pointer {tid} names no permanent mapping"
            assert len(live[tid]) == 2 and live[tid][0] == "system", f"root {tid} is {live[tid]!r}"
        elif name.startswith(b"T"):
            table, tid = name[1:].decode(), value.decode()
            assert tid in permanent, f"table {table} root pointer {tid} names no permanent mapping"
            assert len(live[tid]) == 2 and live[tid][0] == table, f"table {table} root is {live[tid]!r}"
        else:
            # ack: the counter acknowledged writes bump before WAIT (registry/transport.py)
            assert name.startswith(b"P") or name in (b"salt", b"cur", b"ack"), f"unknown meta field {name!r}"

    if reachable:
        for tid, hops in live.items():
            again = reg.get_or_create(list(hops))
            assert again == tid, f"{tid} holds {hops!r}, but get_or_create of that chain gives {again}"
    return live
