"""reg.stats(): what a namespace holds and what the server it lives on is set to.

Read in bounded steps: the namespace's hashes page by page (lua/stats_page.lua, like
debug_dump), then INFO, CONFIG GET save and MEMORY USAGE of the three keys. On a
cluster the server facts come from the node that owns the namespace's slot. The steps
are a generator (`collect`) shared by the sync and async registries; only the drivers
at the bottom differ.

A server that does not answer a command (fakeredis has no INFO, MEMORY or CONFIG; an
ACL may refuse them) leaves those facts None and says so in `warnings`.
"""

from __future__ import annotations

from collections.abc import Generator, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from redis.exceptions import ResponseError

from .operations import Call, Operations, text
from .scripts import script

STATS_PAGE = 500  # entries per page (the most stats_page.lua takes)


@dataclass(frozen=True, slots=True)
class ServerFacts:
    """The server facts that matter to the registry (None: the server did not say)."""

    version: str | None = None  # e.g. "7.0.15" (Valkey: its own version)
    server: str | None = None  # "redis" or "valkey"
    role: str | None = None  # "primary" or "replica"
    connected_replicas: int | None = None
    maxmemory_policy: str | None = None
    maxmemory_bytes: int | None = None  # 0: no limit
    used_memory_bytes: int | None = None
    aof: bool | None = None  # appendonly
    rdb: bool | None = None  # snapshots configured (`save` not empty)


@dataclass(frozen=True, slots=True)
class Stats:
    """A namespace at one moment, read in bounded pages (so, under traffic, a sum of
    pages taken a moment apart, not an atomic snapshot).

    - threads_live: expiring mappings whose deadline has not passed.
    - threads_permanent: roots, table roots and threads written with ttl=None.
    - overrides: chain -> id entries where the id is not the chain's derived one
      (register_thread, collisions), of both kinds.
    - expired_pending: entries past their deadline that no sweep reclaimed yet
      (mappings and floors; exact for each page when it was read).
    - memory_bytes: MEMORY USAGE of the namespace's keys (the server samples large
      hashes: an estimate); None when the server does not answer it.
    - earliest_deadline_ms / latest_deadline_ms: of the live expiring mappings (epoch
      ms, server clock); None when there are none.
    - server: the facts of the server holding the namespace (`ServerFacts`).
    - warnings: where the deployment contradicts docs/deployment.md, in plain words.
    """

    threads_live: int
    threads_permanent: int
    overrides: int
    expired_pending: int
    memory_bytes: int | None
    earliest_deadline_ms: int | None
    latest_deadline_ms: int | None
    server: ServerFacts = field(default_factory=ServerFacts)
    warnings: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data, with exactly the field names above."""
        out = asdict(self)
        out["warnings"] = list(self.warnings)
        return out


@dataclass(frozen=True, slots=True)
class Command:
    """A plain command (not a script) for the driver to send. `keyed`: it names the
    namespace's keys, so a cluster routes it itself; else it goes to the slot's owner.
    Its reply is the error itself when the server refuses it."""

    args: tuple[Any, ...]
    keyed: bool = False


Step = Call[Any] | Command
Collect = Generator[Step, Any, Stats]


def page_call(kind: str, cursor: str, count: int = STATS_PAGE) -> Call[list[Any]]:
    return Call(script("stats_page"), (kind, cursor, str(count)), list)


def _int(value: Any) -> int | None:
    return None if value in (None, b"", "") else int(value)


def collect(ops: Operations, page: int = STATS_PAGE) -> Collect:
    """The steps of stats(): pages of counts, then the server's facts."""
    live = permanent = overrides = expired = 0
    earliest: int | None = None
    latest: int | None = None
    cursor = "0"
    while True:
        r = yield page_call("t", cursor, page)
        live += int(r[1])
        expired += int(r[2]) + int(r[3])
        if (e := _int(r[4])) is not None:
            earliest = e if earliest is None else min(earliest, e)
        if (x := _int(r[5])) is not None:
            latest = x if latest is None else max(latest, x)
        if (o := _int(r[6])) is not None:
            overrides += o
        cursor = text(r[0])
        if cursor == "0":
            break
    while True:
        r = yield page_call("p", cursor, page)
        permanent += int(r[1])
        overrides += int(r[2])
        cursor = text(r[0])
        if cursor == "0":
            break
    memory: int | None = 0
    exists = yield Command(("EXISTS", *ops.keys), keyed=True)
    for key in ops.keys:
        used = yield Command(("MEMORY", "USAGE", key), keyed=True)
        if isinstance(used, Exception):
            memory = None
            break
        memory = (memory or 0) + int(used or 0)
    info = yield Command(("INFO",))
    save = yield Command(("CONFIG", "GET", "save"))
    facts = server_facts(info, save)
    warnings = deployment_warnings(facts, info_missing=isinstance(info, Exception))
    if not isinstance(exists, Exception) and int(exists) == 0:
        warnings.insert(0, f"namespace {ops.namespace!r} holds nothing (never used, cleared, or expired)")
    elif expired > max(1000, live):
        warnings.append(
            f"{expired} expired entries wait to be reclaimed (more than the {live} live threads); "
            "writes sweep them over time, `gc` does it now"
        )
    return Stats(live, permanent, overrides, expired, memory, earliest, latest, facts, tuple(warnings))


def server_facts(info: Any, save: Any) -> ServerFacts:
    if not isinstance(info, Mapping):
        return ServerFacts()
    valkey = info.get("valkey_version")
    role = info.get("role")
    rdb: bool | None = None
    if isinstance(save, Mapping):
        value = save.get("save", save.get(b"save"))
        rdb = bool(text(value).strip()) if value is not None else None
    aof = info.get("aof_enabled")
    return ServerFacts(
        version=str(valkey or info.get("redis_version")) if (valkey or info.get("redis_version")) else None,
        server=str(info.get("server_name") or ("valkey" if valkey else "redis")),
        role={"master": "primary", "slave": "replica"}.get(str(role), str(role)) if role else None,
        connected_replicas=_int(info.get("connected_slaves")),
        maxmemory_policy=str(info["maxmemory_policy"]) if "maxmemory_policy" in info else None,
        maxmemory_bytes=_int(info.get("maxmemory")),
        used_memory_bytes=_int(info.get("used_memory")),
        aof=None if aof is None else bool(int(aof)),
        rdb=rdb,
    )


def deployment_warnings(facts: ServerFacts, *, info_missing: bool = False) -> list[str]:
    """Where the server's settings contradict docs/deployment.md, in plain words."""
    out: list[str] = []
    if info_missing:
        out.append(
            "the server does not answer INFO (an embedded fakeredis, or an ACL without it): "
            "its settings are unknown and not checked"
        )
        return out
    policy = facts.maxmemory_policy
    if policy is not None and policy != "noeviction":
        out.append(
            f"maxmemory-policy is {policy}: eviction can remove one of a namespace's keys and break it "
            "(chains with two ids, the root and permanent threads forgotten); use noeviction"
        )
    if facts.maxmemory_bytes == 0:
        out.append(
            "maxmemory is not set: a full machine ends in the kernel's OOM killer, not in OOM errors "
            "the registry reports; size it for the data plus headroom"
        )
    elif facts.maxmemory_bytes and facts.used_memory_bytes is not None:
        share = facts.used_memory_bytes / facts.maxmemory_bytes
        if share >= 0.9:
            out.append(
                f"used memory is {share:.0%} of maxmemory: at 100% every write fails with OOM "
                "(reads go on); add memory or remove namespaces"
            )
    persisted = facts.aof or facts.rdb
    if facts.aof is not None and not persisted and facts.rdb is not None:
        if facts.role == "primary" and facts.connected_replicas:
            out.append(
                f"no persistence on a primary with {facts.connected_replicas} replica(s): restarted "
                "automatically it comes back empty and its replicas copy the empty data; turn on "
                "appendonly (appendfsync everysec), or never restart a primary automatically"
            )
        elif facts.role == "primary":
            out.append(
                "no persistence (appendonly no, no save points): a restart starts the registry empty "
                "(every thread forgotten, new ids for every chain)"
            )
    if facts.role == "replica":
        out.append("this server is a replica: writes go to its primary (is the URL the right one?)")
    return out


# ---------------------------------------------------------------- drivers


def command_options(client: Any, keys: tuple[str, ...], command: Command) -> dict[str, Any]:
    """Where a plain command goes on a cluster: keyed ones by their key, others to the
    node owning the namespace's slot."""
    if command.keyed or not hasattr(client, "get_node_from_key"):
        return {}
    return {"target_nodes": client.get_node_from_key(keys[0])}


def run_sync(registry: Any, steps: Collect) -> Stats:
    client, keys = registry.client, registry._ops.keys
    try:
        step = next(steps)
        while True:
            reply: Any
            if isinstance(step, Command):
                try:
                    reply = client.execute_command(*step.args, **command_options(client, keys, step))
                except ResponseError as exc:
                    reply = exc
            else:
                reply = registry._run(step)
            step = steps.send(reply)
    except StopIteration as done:
        result: Stats = done.value
        return result


async def run_async(registry: Any, steps: Collect) -> Stats:
    client, keys = registry.client, registry._ops.keys
    try:
        step = next(steps)
        while True:
            reply: Any
            if isinstance(step, Command):
                try:
                    reply = await client.execute_command(*step.args, **command_options(client, keys, step))
                except ResponseError as exc:
                    reply = exc
            else:
                reply = await registry._run(step)
            step = steps.send(reply)
    except StopIteration as done:
        result: Stats = done.value
        return result
