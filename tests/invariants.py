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
LAYOUT = b"2"  # the layout version the scripts write to meta's 'v' (lua/_core.lua)


def _raw_hops(value: bytes) -> tuple[str, ...]:
    return tuple(hop.decode("utf-8") for hop in value.split(RAW_SEP))


def _body(tid: str, body: bytes) -> tuple[tuple[str, ...], str]:
    """(hops, derived id of the chain) of a stored body: the chain, or NUL + derived id +
    chain where the thread's id is not its chain's derived id (lua/_core.lua)."""
    if body.startswith(b"\0"):
        return _raw_hops(body[37:]), body[1:37].decode()
    return _raw_hops(body), tid


def raw_mappings(reg: ThreadRegistry) -> tuple[dict[str, tuple[str, ...]], dict[str, tuple[str, ...]]]:
    """(live, expired) mappings read straight from the namespace's keys: id -> hops.

    Layout 2 (lua/_core.lua): threads hash id -> 6-byte big-endian deadline (ms) + body
    (and floors, NUL + derived id -> deadline, which are not mappings); permanent
    mappings in meta as 'P<id>' -> body. Needs a client that returns bytes.
    """
    return _raw(reg)[:2]


def _raw(
    reg: ThreadRegistry,
) -> tuple[dict[str, tuple[str, ...]], dict[str, tuple[str, ...]], dict[str, str]]:
    """raw_mappings, and the derived id each mapping's body names (id -> derived id)."""
    from registry.keys import namespace_keys

    meta_key, threads_key, _ = namespace_keys(reg.namespace)
    client = reg.client
    seconds, micros = client.time()
    now_ms = int(seconds) * 1000 + int(micros) // 1000
    live: dict[str, tuple[str, ...]] = {}
    expired: dict[str, tuple[str, ...]] = {}
    derived: dict[str, str] = {}
    for raw_id, value in client.hgetall(threads_key).items():
        assert isinstance(value, bytes), "raw_mappings needs a client without decode_responses"
        if raw_id == b"":
            assert value == b"", f"the placeholder field holds {value!r}"
            continue  # the placeholder that keeps the key present (lua/_write.lua ensure_keys)
        if raw_id.startswith(b"\0"):
            assert len(raw_id) == 37, f"floor field {raw_id!r} is not NUL + a derived id"
            assert len(value) == 6, f"floor {raw_id!r} holds {value!r}, not a 6-byte deadline"
            continue  # a floor: the deadline a mapping of that chain must start with
        tid = raw_id.decode()
        deadline = int.from_bytes(value[:6], "big")
        hops, derived[tid] = _body(tid, value[6:])
        (live if deadline > now_ms else expired)[tid] = hops
    for name, value in client.hgetall(meta_key).items():
        if name.startswith(b"P"):
            tid = name[1:].decode()
            assert tid not in live, f"{tid} is both an expiring and a permanent mapping"
            live[tid], derived[tid] = _body(tid, value)
    return live, expired, derived


def assert_raw_keys_consistent(reg: ThreadRegistry, *, reachable: bool = True) -> dict[str, tuple[str, ...]]:
    """Nothing orphaned or doubled in the namespace's raw keys; returns the live mappings.

    - meta names layout 2 once the namespace has a salt;
    - each chain has at most one live id, and each body names one derived id per chain;
    - every override (overrides hash d -> id, and 'Q<d>' -> id in meta) points at a live
      mapping whose body names that derived id (an override of an expired, not yet swept
      mapping is tolerated: it is garbage the sweep reclaims);
    - a permanent floor ('Q<d>' -> '') only where no live mapping's chain derives d;
    - the root pointer (id + body) and every table-root pointer ('T<table>') name a live
      permanent mapping of the right shape;
    - meta holds no field this layout does not know;
    - with `reachable`, every live mapping is found again: get_or_create(its hops) returns
      its id (a write: it touches the mapping's deadline, and creates nothing if it holds).
    """
    from registry.keys import namespace_keys

    meta_key, _, overrides_key = namespace_keys(reg.namespace)
    client = reg.client
    live, expired, derived = _raw(reg)
    meta = client.hgetall(meta_key)
    permanent = {name[1:].decode() for name in meta if name.startswith(b"P")}
    if b"salt" in meta:
        assert meta.get(b"v") == LAYOUT, f"meta says layout {meta.get(b'v')!r}"

    by_chain: dict[tuple[str, ...], str] = {}
    chain_of_derived: dict[str, tuple[str, ...]] = {}
    for tid, hops in live.items():
        other = by_chain.setdefault(hops, tid)
        assert other == tid, f"chain {hops!r} has two live ids: {other} and {tid}"
        seen = chain_of_derived.setdefault(derived[tid], hops)
        assert seen == hops, f"derived id {derived[tid]} named by {seen!r} and {hops!r}"

    def check_override(where: str, d: bytes, target: bytes) -> None:
        tid = target.decode()
        if tid in expired:
            return
        assert tid in live, f"{where} {d!r} -> {tid}, which is no live mapping"
        assert derived[tid] == d.decode(), f"{where} {d!r} -> {tid}, whose body names {derived[tid]}"

    overrides = client.hgetall(overrides_key)
    threads_key = overrides_key.replace(":overrides", ":threads")
    assert client.exists(threads_key) == client.exists(overrides_key), "threads and overrides exist together"
    for d, target in overrides.items():
        if d == b"":
            continue  # the placeholder
        check_override("override", d, target)
    for name, value in meta.items():
        if name.startswith(b"Q") and value == b"":
            d = name[1:].decode()
            assert d not in chain_of_derived, (
                f"permanent floor for {d}, whose chain {chain_of_derived.get(d)!r} has a mapping"
            )
        elif name.startswith(b"Q"):
            check_override("meta override", name[1:], value)
        elif name == b"root":
            tid = value[:36].decode()
            assert tid in permanent, f"root pointer {tid} names no permanent mapping"
            assert _body(tid, value[36:])[0] == live[tid], (
                f"root pointer {value!r} disagrees with {live[tid]!r}"
            )
            assert len(live[tid]) == 2 and live[tid][0] == "system", f"root {tid} is {live[tid]!r}"
        elif name.startswith(b"T"):
            table, tid = name[1:].decode(), value.decode()
            assert tid in permanent, f"table {table} root pointer {tid} names no permanent mapping"
            assert len(live[tid]) == 2 and live[tid][0] == table, f"table {table} root is {live[tid]!r}"
        else:
            # ack: the counter acknowledged writes bump before WAIT (registry/transport.py);
            # v: the layout; x: the expiry the threads and overrides keys were last given;
            # cur and sk: the sweep's cursor and backoff (lua/_remove.lua)
            assert name.startswith(b"P") or name in (b"salt", b"cur", b"sk", b"ack", b"v", b"x"), (
                f"unknown meta field {name!r}"
            )

    if reachable:
        for tid, hops in live.items():
            again = reg.get_or_create(list(hops))
            assert again == tid, f"{tid} holds {hops!r}, but get_or_create of that chain gives {again}"
    return live
