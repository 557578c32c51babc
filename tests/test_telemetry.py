"""OpenTelemetry metrics and spans, and the `registry` logger, proven with the SDK's
in-memory reader and exporter against real servers."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import fakeredis
import pytest
import redis
import redis.asyncio
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from redis.backoff import NoBackoff
from redis.retry import Retry

from registry import DurabilityError, InvalidHopError, InvalidThreadIdError, ThreadRegistry
from registry.aio import AsyncThreadRegistry
from tests.servers import RedisServer, free_port

SECRET = "otel-s3cret-pw"


@dataclass
class Otel:
    reader: InMemoryMetricReader
    exporter: InMemorySpanExporter
    meters: MeterProvider
    tracers: TracerProvider

    def points(self, name: str) -> list[Any]:
        data = self.reader.get_metrics_data()
        out: list[Any] = []
        for rm in data.resource_metrics if data else []:
            for sm in rm.scope_metrics:
                assert sm.scope.name == "redis-thread-registry"
                assert sm.scope.version and sm.scope.version[0].isdigit()
                for metric in sm.metrics:
                    if metric.name == name:
                        out += list(metric.data.data_points)
        return out

    def durations(self) -> dict[tuple[str, str], int]:
        """(operation, outcome) -> count of recorded durations."""
        out: dict[tuple[str, str], int] = {}
        for p in self.points("thread_registry.operation.duration"):
            a = dict(p.attributes)
            assert set(a) == {
                "thread_registry.operation",
                "thread_registry.namespace",
                "thread_registry.outcome",
            }
            key = (a["thread_registry.operation"], a["thread_registry.outcome"])
            out[key] = out.get(key, 0) + p.count
        return out

    def total(self, name: str, **attrs: str) -> int:
        return sum(
            p.value for p in self.points(name) if all(p.attributes.get(k) == v for k, v in attrs.items())
        )

    def spans(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())


@pytest.fixture
def otel() -> Iterator[Otel]:
    reader = InMemoryMetricReader()
    exporter = InMemorySpanExporter()
    tracers = TracerProvider()
    tracers.add_span_processor(SimpleSpanProcessor(exporter))
    meters = MeterProvider(metric_readers=[reader])
    yield Otel(reader, exporter, meters, tracers)
    meters.shutdown()
    tracers.shutdown()


@pytest.fixture
def server(redis_server: RedisServer) -> RedisServer:
    c = redis_server.client()
    c.flushall()
    c.script_flush()
    return redis_server


def make(otel: Otel, client: Any, cls: Any = ThreadRegistry, **kwargs: Any) -> Any:
    return cls(client, namespace="tel", meter_provider=otel.meters, tracer_provider=otel.tracers, **kwargs)


def test_operations_record_durations_and_spans(otel: Otel, server: RedisServer) -> None:
    reg = make(otel, server.client())
    root = reg.initialize_root("acme")
    child = reg.extend_chain(root, "console")
    assert reg.lookup(child) == "system.acme.console"
    with pytest.raises(InvalidHopError):
        reg.extend_chain(child, "bad\nhop")  # bad input: recorded too, nothing sent
    with pytest.raises(InvalidThreadIdError):
        reg.register_thread("not-a-uuid", "a", "b")
    assert otel.durations() == {
        ("initialize_root", "ok"): 1,
        ("extend_chain", "ok"): 1,
        ("lookup", "ok"): 1,
        ("extend_chain", "InvalidHopError"): 1,
        ("register_thread", "InvalidThreadIdError"): 1,
    }
    for p in otel.points("thread_registry.operation.duration"):
        assert p.attributes["thread_registry.namespace"] == "tel"
        assert 0 <= p.sum < 5
        assert child not in str(dict(p.attributes))  # ids never on metrics
    spans = otel.spans()
    assert [s.name for s in spans] == [
        "thread_registry initialize_root",
        "thread_registry extend_chain",
        "thread_registry lookup",
        "thread_registry extend_chain",
        "thread_registry register_thread",
    ]
    for s in spans:
        assert s.kind is SpanKind.CLIENT
        a = dict(s.attributes or {})
        op = s.name.split()[1]
        assert a["db.system.name"] == "redis"
        assert a["db.operation.name"] == "EVALSHA"
        assert a["db.stored_procedure.name"] == f"thread_registry.{op}"
        assert a["thread_registry.operation"] == op
        assert a["thread_registry.namespace"] == "tel"
        assert (a["server.address"], a["server.port"]) == ("127.0.0.1", server.port)
    lookup = spans[2]
    assert lookup.attributes is not None and lookup.attributes["thread_registry.thread_id"] == child
    failed = spans[3]
    assert failed.attributes is not None and failed.attributes["error.type"] == "InvalidHopError"
    assert failed.status.status_code is StatusCode.ERROR
    assert "error.type" not in (spans[1].attributes or {})


def test_a_script_flush_counts_one_reload_per_script(otel: Otel, server: RedisServer) -> None:
    reg = make(otel, server.client())
    reg.start_chain("a", "b")  # first use: NOSCRIPT, loaded
    assert otel.total("thread_registry.script.loads") == 1
    reg.start_chain("a", "c")
    assert otel.total("thread_registry.script.loads") == 1
    server.client().script_flush()
    reg.start_chain("a", "d")
    assert otel.total("thread_registry.script.loads") == 2
    reg.lookup(reg.start_chain("x", "y"))  # lookup's first use: NOSCRIPT, loaded
    assert otel.total("thread_registry.script.loads") == 3
    # A batch loads what its transport has not seen the server take at its head, with
    # no NOSCRIPT; after a flush it gets NOSCRIPT and loads each script of the round once.
    with reg.batch() as b:
        b.start_chain("p", "q").lookup(str(uuid.uuid4()))
    assert otel.total("thread_registry.script.loads") == 3
    server.client().script_flush()
    with reg.batch() as b:
        b.start_chain("p", "q").lookup(str(uuid.uuid4())).start_chain("p", "r")
    assert otel.total("thread_registry.script.loads") == 3 + 2


def test_a_batch_has_one_span_and_a_duration_per_operation(otel: Otel, server: RedisServer) -> None:
    reg = make(otel, server.client())
    b = reg.batch()
    b.start_chain("a", "b").get_or_create("a.c").lookup(str(uuid.uuid4()))
    with pytest.raises(InvalidHopError):
        b.start_chain("a", "")
    b.register_thread(str(uuid.uuid4()), "a", "b")  # the chain has its id already: returns it
    results = b.execute()
    assert len(results) == 4
    d = otel.durations()
    assert d == {
        ("start_chain", "ok"): 1,
        ("get_or_create", "ok"): 1,
        ("lookup", "ok"): 1,
        ("start_chain", "InvalidHopError"): 1,
        ("register_thread", "ok"): 1,
    }
    [span] = [s for s in otel.spans() if s.name == "thread_registry batch"]
    assert span.kind is SpanKind.CLIENT
    assert span.attributes is not None and span.attributes["db.operation.batch.size"] == 4
    # a batch whose operation fails: that one records its error, the others ok
    b2 = reg.batch()
    b2.get_or_create("z.y").initialize_root("acme").initialize_root("other")
    out = b2.execute(raise_on_error=False)
    assert type(out[2]).__name__ == "RootConflictError"
    assert otel.durations()[("initialize_root", "RootConflictError")] == 1


def test_a_durability_error_is_counted_and_logged(
    otel: Otel, server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    reg = make(otel, server.client(), wait_replicas=1, wait_timeout_ms=20)
    with caplog.at_level(logging.WARNING, logger="registry"), pytest.raises(DurabilityError):
        reg.start_chain("a", "b")
    with pytest.raises(DurabilityError), reg.batch() as b:
        b.start_chain("a", "c").start_chain("a", "d")
    assert otel.total("thread_registry.durability.failures") == 2
    d = otel.durations()
    assert d[("start_chain", "DurabilityError")] == 3
    assert [s.attributes["error.type"] for s in otel.spans() if s.attributes] == ["DurabilityError"] * 2
    assert any("durability shortfall: 0 of wait_replicas=1" in r.getMessage() for r in caplog.records)


def test_retries_are_counted_with_their_reason_and_the_stall_logged(
    otel: Otel, caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port()
    # redis-py's own retries off, so the registry's are the ones that wait it out
    client = redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0))
    reg = make(otel, client, retry_seconds=15)
    later = RedisServer(port=port)
    starter = threading.Timer(1.2, later.start)
    starter.start()
    try:
        with caplog.at_level(logging.INFO, logger="registry"):
            assert reg.start_chain("a", "b")
        retries = otel.total("thread_registry.retries", reason="connection")
        assert retries >= 2
        assert otel.total("thread_registry.retries") == retries
        assert otel.durations() == {("start_chain", "ok"): 1}
        stalls = [r for r in caplog.records if "calls stalled" in r.getMessage()]
        assert len(stalls) == 1 and stalls[0].levelno == logging.WARNING  # over a second
        assert any("loaded again after NOSCRIPT" in r.getMessage() for r in caplog.records)  # INFO
    finally:
        starter.join()
        later.stop()
    # nothing listens any more: retried within the budget, then given up, recorded as such
    gone = make(
        otel, redis.Redis(host="127.0.0.1", port=port, retry=Retry(NoBackoff(), 0)), retry_seconds=0.3
    )
    with caplog.at_level(logging.WARNING, logger="registry"), pytest.raises(redis.ConnectionError):
        gone.lookup(str(uuid.uuid4()))
    assert otel.durations()[("lookup", "ConnectionError")] == 1
    assert any("gave up after" in r.getMessage() for r in caplog.records)


def test_quiet_by_default(server: RedisServer, caplog: pytest.LogCaptureFixture) -> None:
    reg = ThreadRegistry(server.client(), namespace="tel")
    with caplog.at_level(logging.WARNING, logger="registry"):
        reg.start_chain("a", "b")
        server.client().script_flush()
        reg.start_chain("a", "c")  # a reload is INFO, not a warning
    assert caplog.records == []


def test_async_operations_and_batches(otel: Otel, server: RedisServer) -> None:
    async def play() -> None:
        async with make(otel, redis.asyncio.Redis.from_url(server.url), AsyncThreadRegistry) as areg:
            tid = await areg.start_chain("a", "b")
            assert await areg.lookup(tid) == "a.b"
            with pytest.raises(InvalidHopError):
                await areg.start_chain("", "b")
            b = areg.batch()
            b.lookup(tid).start_chain("a", "c")
            await b.execute()

    asyncio.run(play())
    assert otel.durations() == {
        ("start_chain", "ok"): 2,
        ("lookup", "ok"): 2,
        ("start_chain", "InvalidHopError"): 1,
    }
    names = [s.name for s in otel.spans()]
    assert names == [
        "thread_registry start_chain",
        "thread_registry lookup",
        "thread_registry start_chain",
        "thread_registry batch",
    ]


def test_no_password_reaches_spans_metrics_or_logs(otel: Otel, caplog: pytest.LogCaptureFixture) -> None:
    with RedisServer() as s:
        s.client().config_set("requirepass", SECRET)
        with caplog.at_level(logging.DEBUG, logger="registry"):
            good = ThreadRegistry.from_url(
                f"redis://default:{SECRET}@127.0.0.1:{s.port}/0",
                namespace="tel",
                meter_provider=otel.meters,
                tracer_provider=otel.tracers,
            )
            good.start_chain("a", "b")
            bad = ThreadRegistry.from_url(
                f"redis://default:{SECRET}x@127.0.0.1:{s.port}/0",
                namespace="tel",
                meter_provider=otel.meters,
                tracer_provider=otel.tracers,
            )
            with pytest.raises(redis.AuthenticationError) as raised:
                bad.start_chain("a", "b")
    seen = [str(dict(sp.attributes or {})) + str(sp.events) + str(sp.status) for sp in otel.spans()]
    seen += [
        str(dict(p.attributes)) for name in ("thread_registry.operation.duration",) for p in otel.points(name)
    ]
    seen += [r.getMessage() for r in caplog.records]
    seen.append(str(raised.value))
    assert len(otel.spans()) == 2
    assert not [text for text in seen if SECRET in text]


def test_without_the_api_nothing_is_imported_or_wrapped() -> None:
    code = textwrap.dedent(
        """
        import sys

        class Block:
            def find_spec(self, name, path=None, target=None):
                if name == "opentelemetry" or name.startswith("opentelemetry."):
                    raise ImportError("blocked for the test")
                return None

        sys.meta_path.insert(0, Block())
        import fakeredis
        from registry import InvalidConfigError, ThreadRegistry
        from registry.aio import AsyncThreadRegistry

        reg = ThreadRegistry(fakeredis.FakeRedis(), namespace="x")
        assert reg.lookup(reg.start_chain("a", "b")) == "a.b"
        with reg.batch() as b:
            b.start_chain("a", "c")
        areg = AsyncThreadRegistry(fakeredis.FakeAsyncRedis(), namespace="x")
        assert reg._telemetry is None and areg._telemetry is None
        assert not {"start_chain", "lookup", "batch"} & set(vars(reg)), vars(reg)
        assert not [m for m in sys.modules if m.startswith("opentelemetry")]
        try:
            ThreadRegistry(fakeredis.FakeRedis(), meter_provider=object())
        except InvalidConfigError as e:
            assert "otel" in str(e)
        else:
            raise AssertionError("a provider without the API must be refused")
        print("clean")
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "clean"


def test_the_global_providers_are_used_by_default() -> None:
    code = textwrap.dedent(
        """
        import fakeredis
        from opentelemetry import metrics, trace
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
        from registry import ThreadRegistry

        reader, exporter = InMemoryMetricReader(), InMemorySpanExporter()
        metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
        tp = TracerProvider()
        tp.add_span_processor(SimpleSpanProcessor(exporter))
        trace.set_tracer_provider(tp)
        ThreadRegistry(fakeredis.FakeRedis(), namespace="g").start_chain("a", "b")
        names = [m.name for rm in reader.get_metrics_data().resource_metrics
                 for sm in rm.scope_metrics for m in sm.metrics]
        assert set(names) == {"thread_registry.operation.duration", "thread_registry.script.loads"}, names
        assert [s.name for s in exporter.get_finished_spans()] == ["thread_registry start_chain"]
        print("global")
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "global"


def test_fakeredis_spans_carry_no_cluster_or_sentinel_guess(otel: Otel) -> None:
    reg = make(otel, fakeredis.FakeRedis())
    reg.start_chain("a", "b")
    [span] = otel.spans()
    assert (
        span.attributes is not None
        and span.attributes["db.stored_procedure.name"] == "thread_registry.start_chain"
    )
    time.sleep(0)


def test_the_cost_benchmark_runs() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.otel_cost", "--fake", "--rounds", "2", "--ops", "20"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    rows = {line.split()[0] for line in done.stdout.splitlines()[3:]}
    assert rows == {"none", "api", "sdk"}


def test_a_provider_set_after_the_registry_is_recorded_through_from_then_on() -> None:
    """With the API and no SDK the wrappers skip recording (the proxies would drop it);
    a global provider set later, while the registry lives, is recorded through from the
    next call on: single calls, batches and their coroutine twins."""
    code = textwrap.dedent(
        """
        import asyncio
        import fakeredis
        from opentelemetry import metrics, trace
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
        from registry import ThreadRegistry
        from registry.aio import AsyncThreadRegistry

        reg = ThreadRegistry(fakeredis.FakeRedis(), namespace="late")
        areg = AsyncThreadRegistry(fakeredis.FakeAsyncRedis(), namespace="late")
        assert reg._telemetry.idle() and areg._telemetry.idle()
        reg.lookup(reg.start_chain("a", "b"))
        early = reg.batch()  # made idle: stays plain
        early.start_chain("a", "c")

        async def calls(label):
            await areg.lookup(await areg.start_chain("a", label))
            b = areg.batch()
            b.start_chain("a", label + "x")
            await b.execute()

        asyncio.run(calls("d"))

        reader, exporter = InMemoryMetricReader(), InMemorySpanExporter()
        tp = TracerProvider()
        tp.add_span_processor(SimpleSpanProcessor(exporter))
        trace.set_tracer_provider(tp)
        assert not reg._telemetry.idle()
        metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
        early.execute()
        tid = reg.start_chain("a", "b")
        reg.lookup(tid)
        with reg.batch() as b:
            b.lookup(tid).get_or_create("a.e")
        asyncio.run(calls("f"))

        names = [s.name for s in exporter.get_finished_spans()]
        assert names == [
            "thread_registry start_chain", "thread_registry lookup", "thread_registry batch",
            "thread_registry start_chain", "thread_registry lookup", "thread_registry batch",
        ], names
        counts = {}
        for rm in reader.get_metrics_data().resource_metrics:
            for sm in rm.scope_metrics:
                for m in sm.metrics:
                    if m.name == "thread_registry.operation.duration":
                        for p in m.data.data_points:
                            op = p.attributes["thread_registry.operation"]
                            counts[op] = counts.get(op, 0) + p.count
        assert counts == {"start_chain": 3, "lookup": 3, "get_or_create": 1}, counts
        print("late")
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "late"


def test_given_providers_are_recorded_through_whatever_the_globals() -> None:
    provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    reg = ThreadRegistry(fakeredis.FakeRedis(), namespace="given", meter_provider=provider)
    assert reg._telemetry is not None and not reg._telemetry.idle()
