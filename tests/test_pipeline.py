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

from registry.cli import main
from registry.pipeline import Settings, run_pipeline
from registry.pipeline.listeners import Answer, Forward, Misrouted, act
from registry.pipeline.wire import ADD, ECHO, PLANNER, ROUTER, stream_key
from tests.servers import RedisServer
from tests.topology import SentinelGroup

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
