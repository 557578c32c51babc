"""The main command: `python -m registry demo` on the embedded backend, and on a real server."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from registry.cli import main
from tests.servers import RedisServer


def _check_conversation(out: str) -> None:
    assert "boot: root system.acme is" in out
    assert "calculator.add  [" in out  # the dotted hop stays one node of the tree
    assert "calculator.add answers: the answer goes to 'router'" in out
    assert "router answers: the answer goes to 'console'" in out
    # the tree shrinks back as answered threads are cleaned up: the last tree has no router
    last_tree = out.rsplit("router answers", 1)[1]
    assert "router" not in last_tree.split("\n", 1)[1]


@pytest.mark.parametrize("flags", [[], ["--async"]])
def test_demo_on_the_embedded_backend(flags: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", *flags]) == 0
    out = capsys.readouterr().out
    assert "embedded in-process backend" in out
    _check_conversation(out)


@pytest.mark.parametrize("flags", [[], ["--async"]])
def test_demo_on_a_real_server_leaves_nothing_behind(redis_server: RedisServer, flags: list[str]) -> None:
    client = redis_server.client()
    client.flushall()
    done = subprocess.run(
        [sys.executable, "-m", "registry", "demo", "--url", redis_server.url, *flags],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    _check_conversation(done.stdout)
    assert client.dbsize() == 0  # the demo clears its namespace


def test_operator_commands_show_and_sweep_a_namespace(
    redis_server: RedisServer, capsys: pytest.CaptureFixture[str]
) -> None:
    from registry import ThreadRegistry

    redis_server.client().flushall()
    reg = ThreadRegistry.from_url(redis_server.url, namespace="ops")
    root = reg.initialize_root("acme")
    leaf = reg.extend_chain(reg.extend_chain(root, "console"), "calculator.add")

    assert main(["threads", "--url", redis_server.url, "--namespace", "ops"]) == 0
    out = capsys.readouterr().out
    assert "3 live threads in namespace 'ops'" in out
    assert f"calculator.add  [{leaf[:8]}, in 23h" in out

    assert main(["threads", "--url", redis_server.url, "--namespace", "ops", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {tuple(r["hops"]) for r in rows} == {
        ("system", "acme"),
        ("system", "acme", "console"),
        ("system", "acme", "console", "calculator.add"),
    }
    assert [r["deadline_ms"] for r in rows if r["id"] == root] == [None]  # the root never expires

    assert main(["gc", "--url", redis_server.url, "--namespace", "ops"]) == 0
    assert "reclaimed 0 expired mappings" in capsys.readouterr().out


def test_operator_commands_need_a_url(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("THREAD_REGISTRY_URL", raising=False)
    assert main(["threads", "--namespace", "ops"]) == 2
    assert "give --url" in capsys.readouterr().err
