"""A loopback TCP proxy for fault-injection tests.

It forwards bytes between its clients and one target (e.g. a redis-server) and, on demand,
cuts a connection right after the server executed a request, refuses new connections, cuts
every connection, or freezes all traffic. Standard library only: one accept thread plus one
thread per proxied connection, which multiplexes both directions with a selector. Every
thread's name starts with ``proxy.thread_prefix``, so a test can check that stop() left none.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading
import time

_CHUNK = 65536
# A side whose bytes the other side has not taken yet (e.g. while frozen) is not read
# further: the kernel buffers and TCP flow control then hold the rest.
_BUFFER_LIMIT = 1 << 20
_CONNECT_TIMEOUT = 5.0
_IO_TIMEOUT = 5.0  # bounds every blocking send, so stop() never waits on a stuck peer for long
# cut_after_request timings (see its docstring).
_CLIENT_IDLE = 0.05
_REPLY_WAIT = 2.0
_UPSTREAM_IDLE = 0.1
_GATHER_CAP = 2.0  # a peer that never pauses still gets cut


class _Waker:
    """A socketpair whose read end a selector watches, so another thread can interrupt select()."""

    def __init__(self) -> None:
        self.reader, self._writer = socket.socketpair()
        self.reader.setblocking(False)
        self._writer.setblocking(False)
        self._lock = threading.Lock()
        self._closed = False

    def wake(self) -> None:
        with self._lock:
            if self._closed:
                return
            # Full means wake-ups are already pending: the reader wakes anyway.
            with contextlib.suppress(BlockingIOError):
                self._writer.send(b"x")

    def drain(self) -> None:
        with contextlib.suppress(BlockingIOError):
            while self.reader.recv(4096):
                pass

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self.reader.close()
            self._writer.close()


def _set_interest(sel: selectors.BaseSelector, sock: socket.socket, events: int, tag: str) -> None:
    """Make sel watch sock for exactly `events` (0: not at all)."""
    try:
        current = sel.get_key(sock).events
    except KeyError:
        current = 0
    if events == current:
        return
    if not events:
        sel.unregister(sock)
    elif not current:
        sel.register(sock, events, tag)
    else:
        sel.modify(sock, events, tag)


class _Connection:
    """One client socket, its own upstream socket, and the thread that pumps between them."""

    def __init__(self, proxy: TcpProxy, client: socket.socket) -> None:
        self._proxy = proxy
        self._client = client
        self._upstream: socket.socket | None = None
        self._waker = _Waker()
        self._lock = threading.Lock()  # guards the sockets' closing against abort() from other threads
        self._aborted = False
        self._closed = False

    def abort(self) -> None:
        """Drop the connection now, from any thread.

        shutdown() tells both peers at once (so the caller can rely on it when this returns) and
        wakes the connection thread, which closes the sockets: closing them here could race with
        its recv() and, after fd reuse, hit an unrelated descriptor.
        """
        with self._lock:
            self._aborted = True
            if self._closed:
                return
            for sock in (self._client, self._upstream):
                if sock is not None:
                    with contextlib.suppress(OSError):
                        sock.shutdown(socket.SHUT_RDWR)
        self._waker.wake()

    def wake(self) -> None:
        self._waker.wake()

    def run(self) -> None:
        try:
            self._serve()
        except OSError:
            pass  # a peer vanished or the connection was aborted: either way, close both ends
        finally:
            with self._lock:
                self._closed = True
                self._client.close()
                if self._upstream is not None:
                    self._upstream.close()
            self._waker.close()
            self._proxy._forget(self)

    def _serve(self) -> None:
        proxy = self._proxy
        upstream = socket.create_connection((proxy.target_host, proxy.target_port), _CONNECT_TIMEOUT)
        with self._lock:
            self._upstream = upstream
            if self._aborted:
                return
        client = self._client
        for sock in (client, upstream):
            # Small request/reply packets must not wait for Nagle + delayed ACKs.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.settimeout(_IO_TIMEOUT)
        to_server = bytearray()
        to_client = bytearray()
        client_eof = upstream_eof = False
        # tag -> (socket, bytes read from it, bytes to write to it); the buffers change in place.
        sides = {"client": (client, to_server, to_client), "upstream": (upstream, to_client, to_server)}
        with selectors.DefaultSelector() as sel:
            sel.register(self._waker.reader, selectors.EVENT_READ, "wake")
            while not self._aborted:
                frozen = proxy._frozen
                if not frozen:
                    # A side is gone and all it sent was delivered: close both (a frozen link also
                    # holds back the close itself).
                    if (client_eof and not to_server) or (upstream_eof and not to_client):
                        return
                    if to_server and proxy._claim_cut():
                        self._cut(to_server, to_client, client_eof)
                        return
                read = selectors.EVENT_READ
                write = 0 if frozen else selectors.EVENT_WRITE
                client_events = (0 if client_eof or len(to_server) >= _BUFFER_LIMIT else read) | (
                    write if to_client else 0
                )
                upstream_events = (0 if upstream_eof or len(to_client) >= _BUFFER_LIMIT else read) | (
                    write if to_server else 0
                )
                _set_interest(sel, client, client_events, "client")
                _set_interest(sel, upstream, upstream_events, "upstream")
                for key, events in sel.select():
                    if key.data == "wake":
                        self._waker.drain()
                        continue
                    sock, inbox, outbox = sides[key.data]
                    if events & selectors.EVENT_READ:
                        try:
                            data = sock.recv(_CHUNK)
                        except OSError:
                            data = b""  # a reset: like EOF, still deliver what this side sent before
                        if not data:
                            if sock is client:
                                client_eof = True
                            else:
                                upstream_eof = True
                        inbox += data
                    # Re-checked: bytes read after freeze() returned must stay held.
                    if events & selectors.EVENT_WRITE and outbox and not proxy._frozen:
                        del outbox[: sock.send(outbox)]

    def _cut(self, request: bytearray, replies: bytearray, client_eof: bool) -> None:
        """Forward the whole request, let the server execute it, drop its reply and both sockets."""
        client, upstream = self._client, self._upstream
        assert upstream is not None
        try:
            if replies:
                # Replies to earlier requests: only this request's reply is to be lost.
                client.sendall(replies)
            # A pipeline may arrive in several send() calls: collect until the client pauses, so the
            # server gets all of it before the cut.
            client.settimeout(_CLIENT_IDLE)
            deadline = time.monotonic() + _GATHER_CAP
            while not client_eof and time.monotonic() < deadline:
                try:
                    data = client.recv(_CHUNK)
                except OSError:  # idle long enough (TimeoutError), or reset
                    break
                if not data:
                    break
                request += data
            upstream.sendall(request)
            # The first reply byte proves the server executed the first command; reading on until
            # the server is idle lets it finish the rest of a pipeline (it answers command by command).
            upstream.settimeout(_REPLY_WAIT)
            deadline = time.monotonic() + _REPLY_WAIT + _GATHER_CAP
            with contextlib.suppress(TimeoutError):
                data = upstream.recv(_CHUNK)
                upstream.settimeout(_UPSTREAM_IDLE)
                while data and time.monotonic() < deadline:
                    data = upstream.recv(_CHUNK)
        finally:
            with self._proxy._lock:
                self._proxy.cuts += 1


class TcpProxy:
    """Forwards 127.0.0.1:`port` to (target_host, target_port), with switchable faults.

    Fault switches and counters are safe to use from any thread at any time. Use start() / stop(),
    or as a context manager.
    """

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target_host = target_host
        self.target_port = target_port
        self.port = 0
        self.connections_accepted = 0  # including refused ones
        self.refused = 0
        self.cuts = 0
        self._lock = threading.Lock()
        self._cut_pending = 0
        self._refuse_pending = 0
        self._frozen = False
        self._stopping = False
        self._listener: socket.socket | None = None
        self._waker = _Waker()
        self._accept_thread: threading.Thread | None = None
        self._conns: set[_Connection] = set()
        self._threads: list[threading.Thread] = []
        self._serial = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def thread_prefix(self) -> str:
        """Every thread this proxy starts has a name starting with this."""
        return f"tcpproxy-{self.port}-"

    def start(self) -> TcpProxy:
        if self._accept_thread is not None:
            raise RuntimeError("this proxy was started already (use start() or `with`, not both)")
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind(("127.0.0.1", 0))
        listener.listen(128)
        listener.setblocking(False)
        self._listener = listener
        self.port = int(listener.getsockname()[1])
        self._accept_thread = threading.Thread(
            target=self._accept_loop, args=(listener,), name=f"{self.thread_prefix}accept", daemon=True
        )
        self._accept_thread.start()
        return self

    def stop(self) -> None:
        """Close the listener and every connection, and join all threads. Idempotent."""
        with self._lock:
            if self._accept_thread is None or self._stopping:
                return
            self._stopping = True
        self._waker.wake()
        self._accept_thread.join()
        # The accept thread is gone, so no connection or thread can be added any more.
        with self._lock:
            conns, threads = list(self._conns), list(self._threads)
        for conn in conns:
            conn.abort()
        for thread in threads:
            thread.join()
        if self._listener is not None:
            self._listener.close()
        self._waker.close()

    def __enter__(self) -> TcpProxy:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def cut_after_request(self, n: int = 1) -> None:
        """Cut the connections carrying the next n client->server chunks, after the server ran them.

        For each such chunk: collect the client's bytes until it has been idle for 50 ms (a redis-py
        pipeline may be written in several send() calls), forward them all, wait up to 2 s for the
        first reply byte (so the server certainly executed the first command), read and discard reply
        bytes until the server has been idle for 100 ms (so it finished every command of a pipeline),
        then close both sockets: the client sees a lost connection although its commands ran.
        Replaces any pending count (0 cancels). A fresh redis-py connection first sends its handshake
        (CLIENT SETINFO), which is a chunk too: warm the connection up before arming this.
        """
        with self._lock:
            self._cut_pending = n

    def refuse_next(self, n: int = 1) -> None:
        """Accept the next n new connections and close them at once, without contacting the target.

        Replaces any pending count (0 cancels).
        """
        with self._lock:
            self._refuse_pending = n

    def cut_all(self) -> None:
        """Close every open connection; both peers have been told when this returns."""
        with self._lock:
            conns = list(self._conns)
        for conn in conns:
            conn.abort()

    def freeze(self) -> None:
        """Stop forwarding in both directions: bytes (and closes) are held, connections stay open.

        New connections are still accepted and connected upstream, but held the same way.
        """
        with self._lock:
            self._frozen = True
            conns = list(self._conns)
        for conn in conns:
            conn.wake()

    def thaw(self) -> None:
        """Resume forwarding, delivering the held bytes first."""
        with self._lock:
            self._frozen = False
            conns = list(self._conns)
        for conn in conns:
            conn.wake()

    def _claim_cut(self) -> bool:
        with self._lock:
            if self._cut_pending > 0 and not self._frozen:
                self._cut_pending -= 1
                return True
            return False

    def _forget(self, conn: _Connection) -> None:
        with self._lock:
            self._conns.discard(conn)

    def _accept_loop(self, listener: socket.socket) -> None:
        with selectors.DefaultSelector() as sel:
            sel.register(listener, selectors.EVENT_READ)
            sel.register(self._waker.reader, selectors.EVENT_READ)
            while not self._stopping:
                sel.select()
                self._waker.drain()
                try:
                    client, _ = listener.accept()
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    time.sleep(0.05)  # e.g. out of file descriptors: retry later rather than spin
                    continue
                self._admit(client)

    def _admit(self, client: socket.socket) -> None:
        with self._lock:
            self.connections_accepted += 1
            if self._stopping or self._refuse_pending > 0:
                if not self._stopping:
                    self._refuse_pending -= 1
                    self.refused += 1
                conn = None
            else:
                conn = _Connection(self, client)
                self._conns.add(conn)
                self._serial += 1
                thread = threading.Thread(
                    target=conn.run, name=f"{self.thread_prefix}conn-{self._serial}", daemon=True
                )
                # Finished threads need no join: keep the list short on long runs.
                self._threads = [t for t in self._threads if t.is_alive()]
                self._threads.append(thread)
        if conn is None:
            client.close()
        else:
            thread.start()
