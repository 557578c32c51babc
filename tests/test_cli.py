"""`thread-registry`, run as an operator runs it: a subprocess against real servers.

Errors are one line and exit 2, never a traceback, never a password; long commands
show progress on a terminal only and stop cleanly on Ctrl-C.
"""

from __future__ import annotations

import json
import os
import pty
import re
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from registry import ThreadRegistry
from registry.cli import COMMANDS, main
from tests.servers import RedisServer, free_port
from tests.topology import RedisClusterGroup, SentinelGroup

SECRET = "s3cret-Pa55word"


def cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("THREAD_REGISTRY_")}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "registry", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env=full_env,
    )


def one_line_error(done: subprocess.CompletedProcess[str], *words: str) -> str:
    """The run failed with exit 2 and one line on stderr that holds `words`, no secret."""
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert SECRET not in done.stdout + done.stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def server(redis_server: RedisServer) -> RedisServer:
    redis_server.client().flushall()
    return redis_server


@pytest.fixture(scope="module")
def secured() -> Iterator[RedisServer]:
    """A server with a password on the default user and an ACL user who may not run scripts."""
    with RedisServer() as s:
        s.client().config_set("requirepass", SECRET)  # after start: start() checks it without one
        c = s.client(password=SECRET)
        c.execute_command("ACL", "SETUSER", "viewer", "on", f">{SECRET}", "~*", "+@all", "-evalsha", "-eval")
        yield s


def populate(url: str, namespace: str = "ops") -> dict[str, str]:
    with ThreadRegistry.from_url(url, namespace=namespace) as reg:
        root = reg.initialize_root("acme")
        console = reg.extend_chain(root, "console")
        add = reg.extend_chain(console, "calculator.add")
        other = reg.start_chain("mail", "inbox")
    return {"root": root, "console": console, "add": add, "other": other}


# ---------------------------------------------------------------- errors


def test_a_refused_connection_is_one_line_and_hides_the_password() -> None:
    port = free_port()
    done = cli("threads", "--url", f"redis://admin:{SECRET}@127.0.0.1:{port}/0", "--namespace", "x")
    one_line_error(done, "cannot reach", f"127.0.0.1:{port}", "refused")


def test_a_wrong_password_is_one_line_and_hides_it(secured: RedisServer) -> None:
    wrong = SECRET + "-wrong"
    done = cli("stats", "--url", f"redis://:{wrong}@127.0.0.1:{secured.port}/0", "--namespace", "x")
    line = one_line_error(done, "authentication")
    assert wrong not in line and "-wrong" not in done.stderr


def test_the_right_password_works_and_an_acl_denial_is_one_line(secured: RedisServer) -> None:
    url = f"redis://:{SECRET}@127.0.0.1:{secured.port}/0"
    populate(url)
    done = cli("threads", "--url", url, "--namespace", "ops")
    assert done.returncode == 0, done.stderr
    assert SECRET not in done.stdout + done.stderr
    viewer = f"redis://viewer:{SECRET}@127.0.0.1:{secured.port}/0"
    one_line_error(cli("threads", "--url", viewer, "--namespace", "ops"), "ACL")


def test_a_sentinel_password_from_the_environment_is_never_shown() -> None:
    port = free_port()
    done = cli(
        "threads",
        "--sentinel",
        f"127.0.0.1:{port}",
        "--service",
        "mymaster",
        "--namespace",
        "x",
        "--timeout",
        "1",
        env={"THREAD_REGISTRY_PASSWORD": SECRET},
    )
    one_line_error(done, "no primary found", "mymaster")


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["threads", "--namespace", "bad ns!"], ["namespace 'bad ns!'", "A-Z"]),
        (["threads", "--namespace", "x" * 65], ["must be 1 to 64"]),
        (["lookup", "not-a-uuid", "--namespace", "ops"], ["not-a-uuid", "not a UUID"]),
        (["threads", "--namespace", "ops", "--limit", "-1"], ["--limit -1"]),
        (["gc", "--namespace", "ops", "--limit", "0"], ["gc limit 0"]),
        (["threads", "--namespace", "ops", "--bogus"], ["unrecognized arguments: --bogus"]),
        (["threads", "--namespace", "ops", "--timeout", "0"], ["--timeout 0"]),
        (["clear", "--namespace", "ops"], ["--yes"]),
    ],
)
def test_bad_input_is_one_line(server: RedisServer, args: list[str], words: list[str]) -> None:
    populate(server.url)
    one_line_error(cli(*args, "--url", server.url), *words)
    assert len(ThreadRegistry(server.client(), namespace="ops").threads()) == 4  # nothing written


@pytest.mark.parametrize(
    ("url", "words"),
    [
        (f"http://:{SECRET}@127.0.0.1:1/0", ["bad URL", "schemes"]),
        (f"redis://:{SECRET}@127.0.0.1:notaport/0", ["bad URL", "Port"]),
    ],
)
def test_a_bad_url_is_one_line_and_hides_the_password(url: str, words: list[str]) -> None:
    one_line_error(cli("threads", "--url", url, "--namespace", "x"), *words)


def test_no_url_and_bad_sentinel_options_are_usage_errors() -> None:
    one_line_error(cli("threads", "--namespace", "x"), "give --url")
    one_line_error(cli("threads", "--sentinel", "h:1", "--namespace", "x"), "--service")
    one_line_error(cli("threads", "--sentinel", "nohost", "--service", "m", "--namespace", "x"), "HOST:PORT")
    one_line_error(
        cli("threads", "--url", "redis://h", "--sentinel", "h:1", "--service", "m", "--namespace", "x"),
        "not both",
    )


def test_a_server_that_never_answers_is_a_timeout() -> None:
    with socket.socket() as listener:  # accepts connections (the kernel's backlog), answers nothing
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        port = listener.getsockname()[1]
        started = time.monotonic()
        done = cli(
            "threads",
            "--url",
            f"redis://:{SECRET}@127.0.0.1:{port}/0",
            "--namespace",
            "x",
            "--timeout",
            "0.5",
        )
        one_line_error(done, "did not answer within 0.5 s")
        assert time.monotonic() - started < 30


# ---------------------------------------------------------------- commands


def test_threads_filters_limits_and_prints_time_left(server: RedisServer) -> None:
    ids = populate(server.url)
    done = cli("threads", "--url", server.url, "--namespace", "ops")
    assert done.returncode == 0, done.stderr
    assert "4 live threads in namespace 'ops'" in done.stdout
    assert re.search(rf"calculator\.add  \[{ids['add'][:8]}, in 23h5\dm\]", done.stdout), done.stdout
    assert f"acme  [root {ids['root'][:8]}, never expires]" not in done.stdout  # the CLI knows no root id
    assert f"acme  [{ids['root'][:8]}, never expires]" in done.stdout
    assert done.stderr == ""  # not a terminal: no progress

    under = cli(
        "threads", "--url", server.url, "--namespace", "ops", "--under", "system.acme.console", "--json"
    )
    rows = [json.loads(line) for line in under.stdout.splitlines()]
    assert {r["id"] for r in rows} == {ids["console"], ids["add"]}
    # (console, pushed by its descendant's write, got up to 1 s of headroom beyond the ttl)
    assert all(re.fullmatch(r"in (23h5\d|24h0)m", r["expires"]) for r in rows), rows
    assert under.stderr == ""

    limited = cli("threads", "--url", server.url, "--namespace", "ops", "--limit", "2")
    assert "2 live threads in namespace 'ops' (stopped at --limit 2; more exist)" in limited.stdout
    assert (
        len(
            cli(
                "threads", "--url", server.url, "--namespace", "ops", "--json", "--limit", "0"
            ).stdout.splitlines()
        )
        == 4
    )


def test_an_empty_namespace_says_so(server: RedisServer) -> None:
    populate(server.url)
    for command in (["threads"], ["lookup", "0b0e9e9a-0000-4000-8000-000000000000"]):
        done = cli(*command, "--url", server.url, "--namespace", "opz")
        assert done.returncode == 1
        assert "namespace 'opz' holds nothing (never used, cleared, or expired)" in done.stderr


def test_lookup_and_cleanup_one_thread(server: RedisServer) -> None:
    ids = populate(server.url)
    base = ["--url", server.url, "--namespace", "ops"]
    done = cli("lookup", ids["add"], *base)
    assert (done.returncode, done.stdout) == (0, "system.acme.console.calculator.add\n")
    assert json.loads(cli("lookup", ids["add"], *base, "--json").stdout)["hops"] == [
        "system",
        "acme",
        "console",
        "calculator.add",
    ]
    done = cli("cleanup", ids["add"], *base)
    assert done.returncode == 0 and "cleaned up thread" in done.stdout
    again = cli("lookup", ids["add"], *base)
    assert again.returncode == 1 and "is not known in namespace 'ops'" in again.stderr
    assert cli("cleanup", ids["add"], *base).returncode == 1
    assert ThreadRegistry(server.client(), namespace="ops").lookup(ids["console"]) is not None


def test_clear_asks_for_yes(server: RedisServer) -> None:
    populate(server.url)
    base = ["--url", server.url, "--namespace", "ops"]
    assert cli("clear", *base).returncode == 2
    assert server.client().exists("threadreg:{ops}:meta")
    done = cli("clear", *base, "--yes")
    assert done.returncode == 0 and "cleared namespace 'ops'" in done.stdout
    assert server.client().dbsize() == 0


def test_url_from_the_environment_and_the_console_script(server: RedisServer) -> None:
    populate(server.url)
    done = cli("threads", "--namespace", "ops", "--json", env={"THREAD_REGISTRY_URL": server.url})
    assert len(done.stdout.splitlines()) == 4
    script = Path(sys.executable).parent / "thread-registry"
    assert script.exists(), "the console script is thread-registry"
    assert not (Path(sys.executable).parent / "registry").exists()  # a bare `registry` is too generic
    run = subprocess.run([str(script), "--help"], capture_output=True, text=True, check=False)
    assert run.returncode == 0
    for command in COMMANDS:
        assert command.name in run.stdout


def test_commands_are_a_table_one_entry_each() -> None:
    names = [command.name for command in COMMANDS]
    assert len(names) == len(set(names))
    assert {"demo", "threads", "stats", "check", "lookup", "cleanup", "gc", "clear"} <= set(names)


def test_main_returns_the_status(server: RedisServer, capsys: pytest.CaptureFixture[str]) -> None:
    populate(server.url)
    assert main(["threads", "--url", server.url, "--namespace", "nothing-here"]) == 1
    assert "holds nothing" in capsys.readouterr().err


# ---------------------------------------------------------------- terminals and Ctrl-C


def _run_on_a_terminal(args: list[str]) -> tuple[int, str, str]:
    """Runs the CLI with stderr on a pseudo-terminal; returns status, stdout, terminal output."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "registry", *args], stdout=subprocess.PIPE, stderr=slave, text=True
    )
    os.close(slave)
    seen = b""
    out = proc.communicate(timeout=60)[0]
    while select.select([master], [], [], 0.2)[0]:
        try:
            chunk = os.read(master, 65536)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
    os.close(master)
    return proc.returncode, out, seen.decode(errors="replace")


def _many_threads(url: str, n: int, namespace: str = "big") -> None:
    with ThreadRegistry.from_url(url, namespace=namespace) as reg:
        for start in range(0, n, 500):
            with reg.batch() as b:
                for i in range(start, min(n, start + 500)):
                    b.start_chain("client", f"worker-{i}")


def test_progress_shows_on_a_terminal_only(server: RedisServer) -> None:
    _many_threads(server.url, 3000)
    status, out, terminal = _run_on_a_terminal(["threads", "--url", server.url, "--namespace", "big"])
    assert status == 0
    assert "reading threads:" in terminal
    assert "reading threads" not in out
    status, out, terminal = _run_on_a_terminal(
        ["threads", "--url", server.url, "--namespace", "big", "--json", "--limit", "0"]
    )
    assert status == 0 and len(out.splitlines()) == 3000
    assert "reading threads" not in terminal  # --json: nothing but the objects


def test_ctrl_c_stops_between_steps(server: RedisServer) -> None:
    _many_threads(server.url, 6000)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "registry",
            "threads",
            "--url",
            server.url,
            "--namespace",
            "big",
            "--json",
            "--limit",
            "0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    first = proc.stdout.readline()  # it is writing its first page; the pipe fills and it waits
    if not first:
        pytest.fail(f"no output: {proc.communicate(timeout=30)[1]!r}, status {proc.returncode}")
    assert json.loads(first)["hops"][0] == "client"
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    # Read on through the same text stream (communicate() would read the pipe itself and
    # lose what readline() buffered), then stderr: one line, it cannot fill its pipe.
    rest = proc.stdout.read()
    assert proc.stderr is not None
    err = proc.stderr.read()
    proc.wait(timeout=60)
    rows = [first, *rest.splitlines()]
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and "interrupted" in err
    assert 0 < len(rows) < 6000  # stopped at a page's end, before the end
    assert all(json.loads(row) for row in rows)  # every line whole


# ---------------------------------------------------------------- topologies


def test_threads_on_a_cluster(redis_cluster: RedisClusterGroup) -> None:
    redis_cluster.wait_settled(10.0, what="the shared cluster", require_replica_per_primary=True)
    redis_cluster.flushall()
    with ThreadRegistry(redis_cluster.client(), namespace="ops") as reg:
        reg.start_chain("a", "b")
    done = cli("threads", "--url", redis_cluster.url, "--cluster", "--namespace", "ops", "--json")
    assert done.returncode == 0, done.stderr
    assert [json.loads(line)["hops"] for line in done.stdout.splitlines()] == [["a", "b"]]


def test_threads_through_sentinel(sentinel_group: SentinelGroup) -> None:
    sentinel_group.wait_settled(timeout=10.0, what="the shared sentinel group")
    r = sentinel_group.master_for()
    r.flushall()
    with ThreadRegistry(r, namespace="ops") as reg:
        reg.start_chain("a", "b")
    sentinels = ",".join(f"{h}:{p}" for h, p in sentinel_group.sentinels)
    base = ["--sentinel", sentinels, "--service", sentinel_group.service_name, "--namespace", "ops"]
    done = cli("threads", *base, "--json")
    assert done.returncode == 0, done.stderr
    assert [json.loads(line)["hops"] for line in done.stdout.splitlines()] == [["a", "b"]]
    assert cli("demo", *base[:-2], "--namespace", "demo-s").returncode == 0
