"""Drive an AsyncThreadRegistry through the sync API, so one test body serves both classes.

Each coroutine method is run to completion on the view's own event loop; batches get
the same treatment (queueing stays sync, execute() and the context manager are driven).
"""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

from registry.aio import AsyncThreadRegistry
from registry.batch import AsyncBatch


class _View:
    def __init__(self, target: Any, loop: asyncio.AbstractEventLoop) -> None:
        self._target = target
        self._loop = loop

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._target, name)
        if inspect.iscoroutinefunction(attr):

            def run(*args: Any, **kwargs: Any) -> Any:
                return self._loop.run_until_complete(attr(*args, **kwargs))

            return run
        return attr


class BatchView(_View):
    def __getattr__(self, name: str) -> Any:
        attr = super().__getattr__(name)
        if name in {"execute"} or not callable(attr):
            return attr

        def queue(*args: Any, **kwargs: Any) -> BatchView:
            attr(*args, **kwargs)
            return self

        return queue

    def __len__(self) -> int:
        return len(self._target)

    def __enter__(self) -> BatchView:
        return self

    def __exit__(self, exc_type: object, *_: object) -> None:
        if exc_type is None:
            self._loop.run_until_complete(self._target.execute())


class SyncView(_View):
    """An AsyncThreadRegistry with the ThreadRegistry interface."""

    def __init__(self, target: AsyncThreadRegistry, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(target, loop)

    def batch(self) -> BatchView:
        b: AsyncBatch = self._target.batch()
        return BatchView(b, self._loop)

    def close(self) -> None:
        self._loop.run_until_complete(self._target.aclose())
