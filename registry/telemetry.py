"""Metrics, traces and logs: what the registry tells the tools operators already use.

Logs go to the stdlib logger ``registry`` always (quiet by default: WARNING only for
real trouble, INFO/DEBUG for the rest). Metrics and spans go through OpenTelemetry when
its API is importable (``pip install 'redis-thread-registry[otel]'``): through the
global MeterProvider and TracerProvider unless a registry is given others
(``meter_provider=`` / ``tracer_provider=``). When the API is not installed nothing is
imported, no method is wrapped, and nothing costs.

Instruments (meter and tracer named ``redis-thread-registry``, with its version):

- ``thread_registry.operation.duration`` (histogram, s): every operation call, also
  one rejected for bad input, and each operation a batch carries (with the batch's
  time); attributes ``thread_registry.operation``, ``thread_registry.namespace``,
  ``thread_registry.outcome`` (``ok`` or the exception class name);
- ``thread_registry.script.loads`` (counter): scripts loaded again after NOSCRIPT;
- ``thread_registry.retries`` (counter, attribute ``reason``): re-sends through
  failover, migration or lost connections;
- ``thread_registry.durability.failures`` (counter): DurabilityError raised;
- one CLIENT span per operation and per batch, ``thread_registry <operation>``, with the
  attributes above (no outcome) plus db.system.name, db.operation.name (EVALSHA),
  db.stored_procedure.name, server.address, server.port, db.operation.batch.size on
  batch spans, error.type on failure, and the thread id where the call names one
  (spans only: ids would give metrics unbounded cardinality).

How it hooks in: a registry made while the API is importable gets per-instance
wrappers of its operation methods (a registry made without it keeps the class's
methods untouched), and its transport reports retries and reloads to `Hooks`. While it
records through the global providers and none has been set (the API installed without an
SDK), a wrapper costs one check per call and a batch is left plain: the API's proxies
would drop everything anyway. A global provider set later is recorded through from the
next call (and the next batch made) on.
"""

from __future__ import annotations

import functools
import inspect
import logging
import time
from collections.abc import Callable
from typing import Any

from redis import exceptions as rx

from .errors import NOT_RUN, UNKNOWN, DurabilityError, InvalidConfigError

log = logging.getLogger("registry")

NAME = "redis-thread-registry"
OPERATIONS = (
    "initialize_root",
    "get_or_create",
    "lookup",
    "lookup_hops",
    "extend_chain",
    "prune_for_response",
    "start_chain",
    "register_thread",
    "initialize_table_root",
    "get_table_root",
    "get_table_for_thread",
    "cleanup",
    "clear",
    "gc",
    "threads",
    "debug_dump",
    "stats",
    "check",
)
# Operations whose first argument is a thread id (it goes on their spans).
_BY_ID = {
    "lookup",
    "lookup_hops",
    "extend_chain",
    "prune_for_response",
    "register_thread",
    "get_table_for_thread",
    "cleanup",
}
_REASONS: tuple[tuple[type[BaseException], str], ...] = (
    (rx.MovedError, "moved"),
    (rx.AskError, "ask"),
    (rx.TryAgainError, "tryagain"),
    (rx.ClusterDownError, "clusterdown"),
    (rx.ReadOnlyError, "readonly"),
    (rx.TimeoutError, "timeout"),
    (rx.ConnectionError, "connection"),
    (rx.ClusterError, "cluster"),
    (OSError, "connection"),
)


def retry_reason(error: BaseException | None) -> str:
    """The ``reason`` of a retry, from what made it necessary."""
    for cls, reason in _REASONS:
        if isinstance(error, cls):
            return reason
    return "connection" if error is None else "other"


class Hooks:
    """What the transport reports: retries, how long they stalled a call, reloads.
    This base logs only; Telemetry also counts."""

    def retried(self, reason: str) -> None:
        log.debug("re-sending after %s", reason)

    def stalled(self, retries: int, seconds: float, ok: bool) -> None:
        """A call retried `retries` times over `seconds`; `ok`: it then got through."""
        if ok:
            level = logging.WARNING if seconds >= 1.0 else logging.INFO
            log.log(
                level,
                "calls stalled %.1f s (%d re-sends: failover, migration or lost connection)",
                seconds,
                retries,
            )
        else:
            log.warning("gave up after %d re-sends over %.1f s", retries, seconds)

    def script_loaded(self, name: str) -> None:
        log.info("script %s loaded again after NOSCRIPT (restart, failover or SCRIPT FLUSH)", name)


LOGGING_ONLY = Hooks()

# ---------------------------------------------------------------- OpenTelemetry, when importable

_api: Any = None  # (metrics, trace) modules once imported; False: not installed


def _otel() -> Any:
    global _api
    if _api is None:
        try:
            from opentelemetry import metrics, trace
        except ImportError:
            _api = False
        else:
            _api = (metrics, trace)
    return _api


def _version() -> str:
    try:
        from importlib.metadata import version

        return version(NAME)
    except Exception:  # pragma: no cover - a source tree that was never installed
        return "0+unknown"


class Telemetry(Hooks):
    """The instruments and tracer of one registry, and the wrappers that feed them."""

    def __init__(self, api: Any, namespace: str, meter_provider: Any, tracer_provider: Any) -> None:
        metrics, trace = api
        version = _version()
        meter = (meter_provider or metrics.get_meter_provider()).get_meter(NAME, version)
        self.tracer = (tracer_provider or trace.get_tracer_provider()).get_tracer(NAME, version)
        self.client_kind = trace.SpanKind.CLIENT
        self.set_span_in_context = trace.set_span_in_context
        from opentelemetry import context

        self.context = context
        self.error_status = trace.Status(trace.StatusCode.ERROR)
        self.duration = meter.create_histogram(
            "thread_registry.operation.duration", unit="s", description="Duration of registry operations"
        )
        self.loads = meter.create_counter(
            "thread_registry.script.loads", description="Scripts loaded again after NOSCRIPT"
        )
        self.retries = meter.create_counter(
            "thread_registry.retries", description="Re-sends through failover, migration or lost connections"
        )
        self.durability_failures = meter.create_counter(
            "thread_registry.durability.failures", description="Writes fewer replicas acknowledged than asked"
        )
        self.namespace = namespace
        self.address: Callable[[], dict[str, Any]] = dict
        # The API's global state, read on every call while this registry records through
        # the global providers (None: it was given providers of its own, or the API keeps
        # its state elsewhere than this version does).
        given = meter_provider is not None or tracer_provider is not None
        self._globals: tuple[Any, Any] | None = None if given else _global_state(metrics, trace)

    def idle(self) -> bool:
        """Whether recording would do nothing right now: no provider was given, and no
        global one has been set (by code or by the environment). The API's proxies then
        drop every measurement and make every span non-recording, so the wrappers skip
        them; once a global provider is set, the proxies forward to it, and the wrappers
        record through them from the next call on."""
        state = self._globals
        return state is not None and state[0]._TRACER_PROVIDER is None and state[1]._METER_PROVIDER is None

    # transport events: log as the base does, and count
    def retried(self, reason: str) -> None:
        super().retried(reason)
        self.retries.add(1, {"reason": reason})

    def script_loaded(self, name: str) -> None:
        super().script_loaded(name)
        self.loads.add(1)

    def _attributes(self, operation: str, outcome: str) -> dict[str, str]:
        return {
            "thread_registry.operation": operation,
            "thread_registry.namespace": self.namespace,
            "thread_registry.outcome": outcome,
        }

    def record(self, operation: str, seconds: float, error: BaseException | None) -> None:
        outcome = "ok" if error is None else type(error).__name__
        self.duration.record(seconds, self._attributes(operation, outcome))
        if isinstance(error, DurabilityError):
            self.durability_failures.add(1, {"thread_registry.namespace": self.namespace})

    def span_attributes(self, operation: str, args: tuple[Any, ...]) -> dict[str, Any]:
        attrs: dict[str, Any] = {
            "thread_registry.operation": operation,
            "thread_registry.namespace": self.namespace,
            "db.system.name": "redis",
            "db.operation.name": "EVALSHA",
            "db.stored_procedure.name": f"thread_registry.{operation}",
            **self.address(),
        }
        if operation in _BY_ID and args:
            attrs["thread_registry.thread_id"] = str(args[0])
        return attrs

    def failed(self, span: Any, error: BaseException) -> None:
        # The class name only: a message may name hosts, never worth the risk of more.
        span.set_attribute("error.type", type(error).__name__)
        span.set_status(self.error_status)

    # ------------------------------------------------------------ wrappers

    def begin(self, name: str, attributes: dict[str, Any]) -> tuple[Any, Any]:
        """Starts a CLIENT span and makes it current while the call runs. (Done by hand:
        start_as_current_span costs about ten times more with the no-op providers, and
        a span that records nothing need not become current.)"""
        span = self.tracer.start_span(name, kind=self.client_kind, attributes=attributes)
        token = self.context.attach(self.set_span_in_context(span)) if span.is_recording() else None
        return span, token

    def end(self, span: Any, token: Any) -> None:
        if token is not None:
            self.context.detach(token)
        span.end()

    def wrap(self, operation: str, method: Callable[..., Any]) -> Callable[..., Any]:
        name = f"thread_registry {operation}"
        state = self._globals
        if inspect.iscoroutinefunction(method):

            async def recorded_awaited(*args: Any, **kwargs: Any) -> Any:
                span, token = self.begin(name, self.span_attributes(operation, args))
                start = time.perf_counter()
                try:
                    result = await method(*args, **kwargs)
                except BaseException as exc:
                    self.record(operation, time.perf_counter() - start, exc)
                    self.failed(span, exc)
                    raise
                else:
                    self.record(operation, time.perf_counter() - start, None)
                    return result
                finally:
                    self.end(span, token)

            if state is None:
                return functools.wraps(method)(recorded_awaited)
            tracing, metering = state

            @functools.wraps(method)
            async def awaited(*args: Any, **kwargs: Any) -> Any:
                if tracing._TRACER_PROVIDER is None and metering._METER_PROVIDER is None:  # idle()
                    return await method(*args, **kwargs)
                return await recorded_awaited(*args, **kwargs)

            return awaited

        def recorded(*args: Any, **kwargs: Any) -> Any:
            span, token = self.begin(name, self.span_attributes(operation, args))
            start = time.perf_counter()
            try:
                result = method(*args, **kwargs)
            except BaseException as exc:
                self.record(operation, time.perf_counter() - start, exc)
                self.failed(span, exc)
                raise
            else:
                self.record(operation, time.perf_counter() - start, None)
                return result
            finally:
                self.end(span, token)

        if state is None:
            return functools.wraps(method)(recorded)
        tracing, metering = state

        @functools.wraps(method)
        def called(*args: Any, **kwargs: Any) -> Any:
            if tracing._TRACER_PROVIDER is None and metering._METER_PROVIDER is None:  # idle()
                return method(*args, **kwargs)
            return recorded(*args, **kwargs)

        return called

    def instrument_batch(self, batch: Any) -> Any:
        """Records the operations queued on `batch` (a rejected one at once) and, when it
        executes, one span for the batch and one duration per operation it carried."""
        names: list[str] = []
        for operation in OPERATIONS:
            queue = getattr(batch, operation, None)
            if queue is not None:
                setattr(batch, operation, self._queueing(operation, queue, names))
        execute = batch.execute
        if inspect.iscoroutinefunction(execute):

            async def awaited(*args: Any, **kwargs: Any) -> Any:
                span, token = self.begin("thread_registry batch", self._batch_attributes(names))
                start = time.perf_counter()
                try:
                    results = await execute(*args, **kwargs)
                except BaseException as exc:
                    self._batch_done(batch, names, span, time.perf_counter() - start, exc)
                    raise
                else:
                    self._batch_done(batch, names, span, time.perf_counter() - start, None)
                    return results
                finally:
                    self.end(span, token)

            batch.execute = awaited
        else:

            def called(*args: Any, **kwargs: Any) -> Any:
                span, token = self.begin("thread_registry batch", self._batch_attributes(names))
                start = time.perf_counter()
                try:
                    results = execute(*args, **kwargs)
                except BaseException as exc:
                    self._batch_done(batch, names, span, time.perf_counter() - start, exc)
                    raise
                else:
                    self._batch_done(batch, names, span, time.perf_counter() - start, None)
                    return results
                finally:
                    self.end(span, token)

            batch.execute = called
        return batch

    def _queueing(self, operation: str, queue: Callable[..., Any], names: list[str]) -> Callable[..., Any]:
        @functools.wraps(queue)
        def queued(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                result = queue(*args, **kwargs)
            except Exception as exc:  # bad input: rejected now, recorded now
                self.record(operation, time.perf_counter() - start, exc)
                raise
            names.append(operation)
            return result

        return queued

    def _batch_attributes(self, names: list[str]) -> dict[str, Any]:
        return {
            "thread_registry.operation": "batch",
            "thread_registry.namespace": self.namespace,
            "db.system.name": "redis",
            "db.operation.name": "EVALSHA",
            "db.operation.batch.size": len(names),
            **self.address(),
        }

    def _batch_done(
        self, batch: Any, names: list[str], span: Any, seconds: float, error: BaseException | None
    ) -> None:
        results = getattr(batch, "results", None) or []
        for i, operation in enumerate(names):
            result = results[i] if i < len(results) else UNKNOWN
            own: BaseException | None = None
            if isinstance(result, BaseException):
                own = result
            elif isinstance(error, DurabilityError) or result is UNKNOWN or result is NOT_RUN:
                own = error  # not acknowledged, or no result of its own: what the batch raised
            self.duration.record(
                seconds, self._attributes(operation, "ok" if own is None else type(own).__name__)
            )
        if isinstance(error, DurabilityError):
            self.durability_failures.add(1, {"thread_registry.namespace": self.namespace})
        if error is not None:
            self.failed(span, error)


def _global_state(metrics: Any, trace: Any) -> tuple[Any, Any] | None:
    """The modules that hold the API's global tracer and meter providers (None until one
    is set), when this version of the API keeps them there; else None, and the wrappers
    record through the proxies on every call, as they would without this shortcut."""
    import importlib

    try:
        metering = importlib.import_module(f"{metrics.__name__}._internal")
    except ImportError:
        return None
    tracing = trace
    if not all(hasattr(m, a) for m, a in ((tracing, "_TRACER_PROVIDER"), (metering, "_METER_PROVIDER"))):
        return None
    if tracing.get_tracer_provider() is not getattr(tracing, "_PROXY_TRACER_PROVIDER", None):
        return None  # not the proxy, though no global is set: another API than this one knows
    if metrics.get_meter_provider() is not getattr(metering, "_PROXY_METER_PROVIDER", None):
        return None
    return tracing, metering


def _server_address(client: Any, key: str) -> Callable[[], dict[str, Any]]:
    """server.address / server.port for spans: the slot's owner on a cluster (looked up
    per span: it moves), the configured host elsewhere (nothing for Sentinel: the
    primary is whichever the Sentinels name)."""
    if hasattr(client, "get_node_from_key"):

        def owner() -> dict[str, Any]:
            try:
                node = client.get_node_from_key(key)
            except Exception:
                return {}
            return {"server.address": node.host, "server.port": int(node.port)}

        return owner
    kwargs = getattr(getattr(client, "connection_pool", None), "connection_kwargs", {})
    fixed: dict[str, Any] = {}
    if kwargs.get("path"):
        fixed["server.address"] = str(kwargs["path"])
    elif kwargs.get("host") and not hasattr(client.connection_pool, "service_name"):
        fixed = {"server.address": str(kwargs["host"]), "server.port": int(kwargs.get("port", 6379))}
    return lambda: fixed


def attach(registry: Any, meter_provider: Any = None, tracer_provider: Any = None) -> Telemetry | None:
    """Instruments `registry` when the OpenTelemetry API is importable; else None and
    nothing changes (its transport keeps logging its retries and reloads)."""
    api = _otel()
    if not api:
        if meter_provider is not None or tracer_provider is not None:
            raise InvalidConfigError(
                "meter_provider/tracer_provider given but the OpenTelemetry API is not installed: "
                "pip install 'redis-thread-registry[otel]'"
            )
        return None
    telemetry = Telemetry(api, registry.namespace, meter_provider, tracer_provider)
    telemetry.address = _server_address(registry.client, registry._ops.keys[0])
    for operation in OPERATIONS:
        method = getattr(registry, operation, None)
        if method is not None:
            setattr(registry, operation, telemetry.wrap(operation, method))
    make_batch = registry.batch

    @functools.wraps(make_batch)
    def batch() -> Any:
        # A batch made while recording is idle stays plain (queueing costs nothing more);
        # one made once a provider is set records its operations and its execution.
        made = make_batch()
        return made if telemetry.idle() else telemetry.instrument_batch(made)

    registry.batch = batch
    registry._transport.hooks = telemetry
    return telemetry
