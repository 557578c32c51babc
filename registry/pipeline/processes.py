"""The worker processes: started with spawn (nothing shared in memory), killed, restarted."""

from __future__ import annotations

import multiprocessing
import queue
import threading
import time
from typing import Any

from .wire import Settings
from .worker import worker_main


class WorkerPool:
    """`count` worker processes, one per slot; a slot killed is started again (a new
    generation: a new consumer name, so the dead one's entries are claimed by others)."""

    def __init__(self, settings: Settings, count: int) -> None:
        if count < 1:
            raise ValueError(f"--workers {count} must be at least 1")
        self.settings = settings
        self.count = count
        self._ctx = multiprocessing.get_context("spawn")
        self._procs: list[Any] = [None] * count
        self._generation = [0] * count
        self._lock = threading.Lock()
        self._ready = self._ctx.Queue()
        self.kills = 0

    def start(self, timeout: float = 60.0) -> None:
        """Start every slot's process; return once each is connected (or raise)."""
        for slot in range(self.count):
            self._spawn(slot)
        waiting = set(range(self.count))
        deadline = time.monotonic() + timeout
        while waiting:
            try:
                waiting.discard(self._ready.get(timeout=max(0.1, deadline - time.monotonic())))
            except queue.Empty:
                self.stop()
                raise RuntimeError(f"workers {sorted(waiting)} did not connect within {timeout:g}s") from None

    def _spawn(self, slot: int) -> None:
        self._generation[slot] += 1
        proc = self._ctx.Process(
            target=worker_main,
            args=(self.settings, slot, self._generation[slot], self._ready),
            name=f"pipeline-worker-{slot}",
            daemon=True,
        )
        proc.start()
        self._procs[slot] = proc

    def kill_and_restart(self, slot: int) -> None:
        """SIGKILL the slot's process (no cleanup of any kind runs), then start a new one."""
        with self._lock:
            proc = self._procs[slot]
            proc.kill()
            proc.join(10)
            self.kills += 1
            self._spawn(slot)

    def alive(self) -> int:
        return sum(1 for p in self._procs if p is not None and p.is_alive())

    def stop(self) -> None:
        with self._lock:
            for proc in self._procs:
                if proc is not None and proc.is_alive():
                    proc.terminate()
            for proc in self._procs:
                if proc is not None:
                    proc.join(5)
                    if proc.is_alive():
                        proc.kill()
                        proc.join(5)
