"""The reference pipeline (registry.pipeline) end to end, on servers the fixtures start.

Each run starts real worker processes (spawn) and checks the summary the command prints:
no answer lost, none misrouted, and the namespace back to its root afterwards. Faults
(``--chaos``) and a Sentinel failover must change none of that; what they cost
(duplicates, stalls) is in the summary, not asserted.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from typing import Any

import pytest

from registry import UnknownThreadError, listener_of
from registry.cli import main
from registry.pipeline import Settings, run_pipeline
from registry.pipeline.listeners import Answer, Forward, Misrouted, act
from registry.pipeline.wire import ADD, ECHO, PLANNER, ROUTER, stream_key
from tests.servers import RedisServer
from tests.topology import RedisClusterGroup, SentinelGroup

CHAOS_RUN = ("--workers", "3", "--requests", "300", "--rate", "80", "--chaos", "--json", "--timeout", "90")
FAILOVER_RUN = (
    "--workers",
    "2",
    "--requests",
    "300",
    "--rate",
    "60",
    "--chaos",
    "--json",
    "--timeout",
    "120",
)


def _namespace() -> str:
    return f"pl-{uuid.uuid4().hex[:8]}"


def _check(summary: dict[str, Any], requests: int) -> None:
    assert summary["requests"] == requests
    assert summary["lost"] == 0, summary
    assert summary["misrouted"] == 0, summary
    assert summary["answered"] == requests, summary
    # Every conversation's threads were removed when its answer came: only the root is left.
    assert summary["threads_before"] == 1, summary
    assert summary["threads_after"] == 1, summary
    assert summary["streams_quiet"], summary


def test_pipeline_on_one_server(redis_server: RedisServer) -> None:
    summary = run_pipeline(Settings(namespace=_namespace(), url=redis_server.url), workers=2, requests=300)
    _check(summary, 300)
    assert summary["duplicates"] == 0
    assert summary["routing"] == "registry"
    # console -> router -> service -> router -> console, and planner's two more hops
    assert summary["messages"] == 300 * 4 + 100 * 2
    assert summary["registry_ops"] > 0
    client = redis_server.client()
    assert not client.exists(stream_key(summary["namespace"], ROUTER))  # the streams went with the run


def test_pipeline_under_chaos_json_last_line(redis_server: RedisServer) -> None:
    """The command as a user runs it: --chaos --json, the summary the last line of output."""
    ns = _namespace()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "registry",
            "pipeline",
            "--url",
            redis_server.url,
            "--namespace",
            ns,
            *CHAOS_RUN,
        ],
        capture_output=True,
        text=True,
        timeout=150,
    )
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    _check(summary, 300)
    assert proc.returncode == 0, proc.stderr
    faults = summary["faults"]
    # Each fault ran during the run: kill -9 and restart, script flush, client kill.
    assert faults["worker_kills"] >= 1 and faults["flush"] >= 2 and faults["connections_killed"] >= 1, faults


def test_pipeline_baseline_routes_by_chain(redis_server: RedisServer) -> None:
    """The benchmark's baseline (no registry) answers everything, with no registry call."""
    summary = run_pipeline(
        Settings(namespace=_namespace(), url=redis_server.url, routing="chain"), workers=1, requests=90
    )
    assert summary["lost"] == 0 and summary["misrouted"] == 0 and summary["answered"] == 90
    assert summary["registry_ops"] == 0


def test_pipeline_on_cluster_under_chaos(redis_cluster: RedisClusterGroup) -> None:
    """--cluster: the streams share the namespace's slot; faults on every primary."""
    summary = run_pipeline(
        Settings(namespace=_namespace(), url=redis_cluster.url, cluster=True),
        workers=2,
        requests=240,
        rate=80,
        chaos=True,
        timeout=90,
    )
    _check(summary, 240)
    assert summary["faults"]["flush"] >= 1 and summary["faults"]["worker_kills"] >= 1, summary["faults"]


def test_pipeline_sentinel_failover() -> None:
    """On a Sentinel group: chaos with a SENTINEL FAILOVER in the middle; writes wait for a replica."""
    with SentinelGroup() as group:
        hosts = ",".join(f"{h}:{p}" for h, p in group.sentinels)
        ns = _namespace()
        old = group.primary()
        out: list[str] = []
        code = _main_capturing(
            [
                "pipeline",
                "--sentinel",
                hosts,
                "--service",
                group.service_name,
                "--namespace",
                ns,
                *FAILOVER_RUN,
            ],
            out,
        )
        summary = json.loads(out[-1])
        _check(summary, 300)
        assert code == 0
        assert summary["faults"].get("failover") == 1, summary["faults"]
        assert group.primary() != old


def _main_capturing(argv: list[str], out: list[str]) -> int:
    import contextlib
    import io

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        code = main(argv)
    out.extend(buffer.getvalue().splitlines())
    return code


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--workers", "0"], "--workers 0 must be at least 1"),
        (["--requests", "0"], "--requests 0 must be at least 1"),
        (["--sentinel", "nohostport", "--service", "m"], "'nohostport' must be HOST:PORT"),
        (["--sentinel", "127.0.0.1:1"], "--sentinel needs --service NAME"),
    ],
)
def test_pipeline_bad_options(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pipeline", "--url", "redis://127.0.0.1:1/0", *argv]) == 2
    assert message in capsys.readouterr().err


def test_listeners_decide_without_io() -> None:
    """What each listener does, and what it refuses as misrouted."""
    req = {"k": "req", "i": 1, "n": "x", "svc": PLANNER, "a": 2, "b": 3}
    assert act(ROUTER, req) == Forward(PLANNER, req)
    assert act(PLANNER, req) == Forward(ADD, req)
    assert act(ADD, dict(req, svc=ADD)) == Answer(dict(req, svc=ADD, k="ans", r=5))
    echo = act(ECHO, {"k": "req", "svc": ECHO, "s": "hi"})
    assert isinstance(echo, Answer) and echo.needs_path
    ans = dict(req, k="ans", r=5, to=PLANNER)
    assert act(PLANNER, ans) == Answer(dict(ans, r=10))
    assert act(ROUTER, dict(ans, to="console#7")) == Misrouted("an answer for 'console#7' reached router")
    assert isinstance(act(ADD, dict(ans, to=ADD)), Misrouted)
    assert isinstance(act(ROUTER, dict(req, svc="nope")), Misrouted)


# ---------------------------------------------------------------- redelivery, step by step
#
# Workers run in this process here, so a crash can be put exactly between two steps of a
# handling (docs/pipeline.md, "The order of one handling"). The crash is an exception out
# of the step; the entry stays pending; a second worker claims it (min idle 0) and handles
# it again. The answer must reach the console, and the namespace end with its root only.


class Crash(Exception):
    pass


def _one_request(settings: Settings, service: str = ADD) -> tuple[Any, Any]:
    """A console's request, sent to the router's stream as Console.send does it."""
    from registry.pipeline.console import Console, make_requests, prepare_streams
    from registry.pipeline.wire import CONSOLE_CLIENT_NAME, connect

    registry = connect(settings, CONSOLE_CLIENT_NAME)
    prepare_streams(registry.client, settings.namespace)
    requests = [r for r in make_requests(3) if r.payload["svc"] == service]
    console = Console(settings, registry, requests, window=10)
    console.send(1)
    return console, registry


def _until_answered(console: Any, workers: list[Any], rounds: int = 20) -> None:
    for _ in range(rounds):
        for w in workers:
            w.handle(w.claim(), claimed=True)
            w.handle(w.read())
        console.receive(block_ms=None)
        if console.tally.answered:
            return


@pytest.mark.parametrize("crash_at", ["resolve", "send", "cleanup", "ack"])
@pytest.mark.parametrize("listener", [ROUTER, ADD])
def test_redelivery_after_a_crash_between_steps(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch, crash_at: str, listener: str
) -> None:
    from registry.pipeline import worker as worker_module
    from registry.pipeline.worker import Worker

    settings = Settings(namespace=_namespace(), url=redis_server.url, claim_idle_ms=0)
    console, registry = _one_request(settings)
    first, second = Worker(settings, 0, 1), Worker(settings, 1, 1)
    # The first worker handles everything up to the listener where it crashes.
    crashed = False

    def arm(msgs: list[Any]) -> bool:
        return not crashed and any(m.listener == listener for m in msgs)

    real_resolve, real_finish, real_ack = first.routing.resolve, first.routing.finish, first.acknowledge
    real_add = worker_module.add_messages

    def resolve(items: list[Any]) -> list[Any]:
        nonlocal crashed
        if crash_at == "resolve" and arm([m for m, _ in items]):
            crashed = True
            raise Crash
        return real_resolve(items)

    def add(client: Any, ns: str, outgoing: list[Any], wait: int) -> None:
        nonlocal crashed
        real_add(client, ns, outgoing, wait)
        if crash_at == "send" and arm(first.current):
            crashed = True
            raise Crash

    def finish(answered: list[Any]) -> list[Any]:
        nonlocal crashed
        out = real_finish(answered)
        if crash_at == "cleanup" and arm(first.current):
            crashed = True
            raise Crash
        return out

    def ack(done: list[Any], **counts: int) -> None:
        nonlocal crashed
        if crash_at == "ack" and arm(done):
            crashed = True
            raise Crash
        real_ack(done, **counts)

    monkeypatch.setattr(first.routing, "resolve", resolve)
    monkeypatch.setattr(first.routing, "finish", finish)
    monkeypatch.setattr(first, "acknowledge", ack)
    monkeypatch.setattr(worker_module, "add_messages", add)
    with pytest.raises(Crash):
        for _ in range(10):
            first.handle(first.read())
    assert crashed
    _until_answered(console, [second])
    console.receive(block_ms=None)
    console.clean()
    assert console.tally.answered == 1
    assert console.tally.misrouted == 0
    assert console.tally.duplicates <= 1
    # A crash after the send is a duplicate at worst, never a loss; nothing is left behind.
    assert len(registry.threads()) == 1
    registry.close()


def test_dropping_before_the_send_loses_the_answer(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Why the pipeline resolves without drop and cleans up after the send: answering with
    prune_for_response(drop=True) and crashing before the XADD loses the answer for good
    (the repeat finds the thread gone and takes it for already answered). This is the
    harness above catching a wrong order."""
    from registry.pipeline import worker as worker_module
    from registry.pipeline.routing import Outgoing, RegistryRouting
    from registry.pipeline.worker import Worker

    class DropFirst(RegistryRouting):
        def resolve(self, items: list[Any]) -> list[Any]:
            out: list[Any] = []
            for msg, action in items:
                if isinstance(action, Answer):
                    try:
                        route = self.registry.prune_for_response(msg.thread_id, drop=True)
                    except UnknownThreadError as exc:
                        out.append(exc)
                        continue
                    payload = dict(action.payload, to=route.target)
                    out.append(Outgoing(listener_of(route.target or ""), route.thread_id, payload))
                else:
                    out += super().resolve([(msg, action)])
            return out

        def finish(self, answered: list[Any]) -> list[Any]:
            return [None] * len(answered)

    settings = Settings(namespace=_namespace(), url=redis_server.url, claim_idle_ms=0)
    console, registry = _one_request(settings)
    first, second = Worker(settings, 0, 1), Worker(settings, 1, 1)
    first.routing = DropFirst(first.registry)
    second.routing = DropFirst(second.registry)
    real_add = worker_module.add_messages

    def add(client: Any, ns: str, outgoing: list[Any], wait: int) -> None:
        if any(m.listener == ADD for m in first.current):
            raise Crash  # after the drop, before the send
        real_add(client, ns, outgoing, wait)

    monkeypatch.setattr(worker_module, "add_messages", add)
    with pytest.raises(Crash):
        for _ in range(10):
            first.handle(first.read())
    monkeypatch.setattr(worker_module, "add_messages", real_add)
    _until_answered(console, [second], rounds=6)
    assert console.tally.answered == 0  # lost
    assert int(registry.client.hget(f"pipeline:{{{settings.namespace}}}:stats", "already_answered")) == 1
    registry.close()


def test_benchmark_runs_both_routings(redis_server: RedisServer, capsys: pytest.CaptureFixture[str]) -> None:
    """python -m benchmarks.pipeline, in small: one round, a table with both rows."""
    from benchmarks.pipeline import main as bench_main

    assert bench_main(["--url", redis_server.url, "--rounds", "1", "--requests", "60", "--workers", "1"]) == 0
    out = capsys.readouterr().out
    assert "| 1 | registry (thread id) |" in out and "| 1 | baseline (chain in message) |" in out
