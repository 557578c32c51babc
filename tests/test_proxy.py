"""The fault-injection proxy (tests/proxy.py) against a real redis-server: it forwards faithfully,
and each fault does exactly what the tests that use it rely on."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest
import redis
import redis.backoff
import redis.retry

from tests.proxy import TcpProxy
from tests.servers import RedisServer

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


@pytest.fixture
def direct(server: RedisServer) -> redis.Redis:
    client = server.client()
    client.flushall()
    return client


@pytest.fixture
def proxy(server: RedisServer) -> Iterator[TcpProxy]:
    assert server.port is not None
    with TcpProxy("127.0.0.1", server.port) as proxy:
        yield proxy


def no_retry_client(proxy: TcpProxy, **kwargs: object) -> redis.Redis:
    """A client that reports a lost connection instead of silently retrying the command."""
    return redis.Redis(
        host="127.0.0.1",
        port=proxy.port,
        retry=redis.retry.Retry(redis.backoff.NoBackoff(), 0),
        socket_connect_timeout=5,
        **kwargs,  # type: ignore[arg-type]
    )


def test_forwards_commands_and_pipelines(proxy: TcpProxy, direct: redis.Redis) -> None:
    client = redis.Redis(host="127.0.0.1", port=proxy.port, socket_timeout=5)
    assert client.set("k", "v") and client.get("k") == b"v"
    for i in range(200):
        client.rpush("list", i)
    assert client.llen("list") == 200
    big = b"x" * 3_000_000  # larger than the proxy's buffers and the socket buffers
    client.set("big", big)
    assert client.get("big") == big
    pipe = client.pipeline(transaction=False)
    for _ in range(100):
        pipe.incr("n")
    assert pipe.execute() == list(range(1, 101))
    assert direct.get("n") == b"100"
    assert proxy.connections_accepted == 1 and proxy.cuts == 0


def test_cut_after_request_runs_the_command_but_loses_the_reply(proxy: TcpProxy, direct: redis.Redis) -> None:
    client = no_retry_client(proxy, socket_timeout=10)
    client.ping()  # the connection's handshake must not be the request that is cut
    proxy.cut_after_request()
    with pytest.raises(redis.ConnectionError):
        client.incr("k")
    assert direct.get("k") == b"1"
    assert proxy.cuts == 1
    assert client.incr("k") == 2  # the mode was used up: a new connection works normally


@pytest.mark.parametrize("transaction", [True, False])
def test_cut_after_request_lets_a_whole_pipeline_run(
    proxy: TcpProxy, direct: redis.Redis, transaction: bool
) -> None:
    client = no_retry_client(proxy, socket_timeout=10)
    client.ping()
    proxy.cut_after_request()
    pipe = client.pipeline(transaction=transaction)
    for _ in range(10):
        pipe.incr("k")
    # Large values make redis-py write the pipeline in several send() calls.
    pipe.set("big", b"y" * 100_000)
    with pytest.raises(redis.ConnectionError):
        pipe.execute()
    assert direct.get("k") == b"10" and direct.strlen("big") == 100_000
    assert proxy.cuts == 1
    assert client.incr("k") == 11


def test_cut_after_request_waits_for_a_request_sent_in_pieces(proxy: TcpProxy, direct: redis.Redis) -> None:
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as sock:
        sock.sendall(b"PING\r\n")
        assert sock.recv(100) == b"+PONG\r\n"
        proxy.cut_after_request()
        sock.sendall(b"INCR k\r\n")
        time.sleep(0.02)  # a pause shorter than the proxy's 50 ms: still the same request
        sock.sendall(b"INCR k\r\n" * 9)
        assert sock.recv(100) == b""  # no reply, just the close
    assert direct.get("k") == b"10"
    assert proxy.cuts == 1


def test_cut_after_request_counts_down(proxy: TcpProxy, direct: redis.Redis) -> None:
    clients = [no_retry_client(proxy, socket_timeout=10) for _ in range(3)]
    for client in clients:
        client.ping()  # a fresh connection's handshake chunks would use the count up
    proxy.cut_after_request(2)
    for client in clients[:2]:
        with pytest.raises(redis.ConnectionError):
            client.incr("k")
    assert clients[2].incr("k") == 3
    assert proxy.cuts == 2


def test_refuse_next_never_reaches_the_server(proxy: TcpProxy, direct: redis.Redis) -> None:
    before = direct.info("stats")["total_connections_received"]
    client = no_retry_client(proxy, socket_timeout=5)
    proxy.refuse_next()
    with pytest.raises(redis.ConnectionError):
        client.incr("k")
    assert direct.get("k") is None
    assert direct.info("stats")["total_connections_received"] == before
    assert client.incr("k") == 1
    assert proxy.connections_accepted == 2 and proxy.refused == 1


def test_cut_all_drops_open_connections(proxy: TcpProxy, direct: redis.Redis) -> None:
    raw = socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
    raw.sendall(b"PING\r\n")
    assert raw.recv(100) == b"+PONG\r\n"
    blocked = no_retry_client(proxy, socket_timeout=10)
    blocked.ping()
    errors: list[Exception] = []

    def wait_for_list() -> None:
        try:
            blocked.blpop(["list"], timeout=8)
        except Exception as exc:
            errors.append(exc)

    waiter = threading.Thread(target=wait_for_list)
    waiter.start()
    deadline = time.monotonic() + 5
    while direct.info("clients")["blocked_clients"] == 0:  # the BLPOP is in flight
        assert time.monotonic() < deadline
        time.sleep(0.01)
    started = time.monotonic()
    proxy.cut_all()
    assert raw.recv(100) == b""  # already closed when cut_all() returned
    raw.close()
    waiter.join(timeout=5)
    assert time.monotonic() - started < 2
    assert len(errors) == 1 and isinstance(errors[0], redis.ConnectionError)
    assert blocked.incr("k") == 1  # new connections are unaffected


def test_freeze_holds_traffic_until_thaw(proxy: TcpProxy, direct: redis.Redis) -> None:
    client = no_retry_client(proxy, socket_timeout=0.3)
    client.ping()
    proxy.freeze()
    started = time.monotonic()
    with pytest.raises(redis.TimeoutError):
        client.set("k", "v")
    assert time.monotonic() - started >= 0.3
    assert direct.get("k") is None
    proxy.thaw()
    fresh = no_retry_client(proxy, socket_timeout=5)
    assert fresh.set("k2", "v2") and fresh.get("k2") == b"v2"


def test_freeze_buffers_bytes_and_thaw_delivers_them(proxy: TcpProxy) -> None:
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as sock:
        sock.sendall(b"PING\r\n")
        assert sock.recv(100) == b"+PONG\r\n"  # the upstream connection exists before the freeze
        proxy.freeze()
        sock.sendall(b"ECHO hello\r\n")
        sock.settimeout(0.3)
        with pytest.raises(TimeoutError):
            sock.recv(100)
        proxy.thaw()
        sock.settimeout(5)
        assert sock.recv(100) == b"$5\r\nhello\r\n"


def test_stop_leaves_no_thread_behind(server: RedisServer) -> None:
    assert server.port is not None
    proxy = TcpProxy("127.0.0.1", server.port).start()
    prefix = proxy.thread_prefix
    idle = redis.Redis(host="127.0.0.1", port=proxy.port, socket_timeout=5)
    idle.ping()  # a connection left open
    frozen = socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
    proxy.freeze()
    frozen.sendall(b"PING\r\n")  # one with held bytes
    assert any(t.name.startswith(prefix) for t in threading.enumerate())
    started = time.monotonic()
    proxy.stop()
    assert time.monotonic() - started < 5
    assert [t.name for t in threading.enumerate() if t.name.startswith(prefix)] == []
    proxy.stop()  # idempotent
    frozen.close()
    idle.close()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", proxy.port), timeout=1).close()
