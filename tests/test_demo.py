"""The main command: `python -m registry demo` on the embedded backend, and on a real server."""

from __future__ import annotations

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
