"""Throwaway redis-server processes for tests and benchmarks.

Each server runs on a free loopback port (or a unix socket) in its own temporary
directory, with persistence off, and is stopped (and its directory removed) by stop().
Never used against a server it did not start.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis

REDIS_SERVER = os.environ.get("REDIS_SERVER_BIN") or shutil.which("redis-server") or "redis-server"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (never 6379)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port != 6379:
            return port


@dataclass
class RedisServer:
    """One redis-server process. Use start() / stop(), or as a context manager."""

    port: int | None = None
    unix_socket: bool = False
    extra_args: list[str] = field(default_factory=list)
    binary: str = REDIS_SERVER  # the benchmark's server matrix starts other builds
    workdir: Path = field(init=False)
    process: subprocess.Popen[bytes] | None = field(init=False, default=None)

    def start(self, timeout: float = 10.0) -> RedisServer:
        self.workdir = Path(tempfile.mkdtemp(prefix="threadreg-redis-"))
        chosen_port = self.port is None and not self.unix_socket
        if self.port is None:
            self.port = 0 if self.unix_socket else free_port()
        args = [
            self.binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.workdir),
            "--logfile",
            str(self.workdir / "redis.log"),
            "--daemonize",
            "no",
        ]
        if self.unix_socket:
            args += ["--unixsocket", str(self.socket_path), "--unixsocketperm", "700"]
        args += self.extra_args
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while True:
            try:
                # Ours, not another process's server that took the port first.
                if self.process.poll() is None and self.client().config_get("dir")["dir"] == str(
                    self.workdir
                ):
                    return self
            except (redis.ConnectionError, FileNotFoundError, OSError):
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                log = (self.workdir / "redis.log").read_text(errors="replace")[-2000:]
                self.stop()
                if "Address already in use" in log and chosen_port and time.monotonic() < deadline:
                    self.port = None  # lost a race for the port: try another
                    return self.start(timeout=max(deadline - time.monotonic(), 1.0))
                raise RuntimeError(f"redis-server did not start: {log}")
            time.sleep(0.02)

    @property
    def socket_path(self) -> Path:
        return self.workdir / "redis.sock"

    @property
    def url(self) -> str:
        if self.unix_socket:
            return f"unix://{self.socket_path}"
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self, **kwargs: object) -> redis.Redis:
        return redis.Redis.from_url(self.url, **kwargs)  # type: ignore[arg-type]

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()
