"""The embedded backend's adaptation of fakeredis (registry/embedded.py) changes speed only.

Each script here runs on a plain fakeredis server and on an adapted one, and every answer
(reply or error text) and every key written must be the same. The registry's own scripts
run on both in the behaviour suites (backends "fake" and "fake-plain").
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
from typing import Any

import fakeredis
import pytest
import redis

from registry import ThreadRegistry, embedded
from registry.default import embedded_client as default_embedded_client

ADAPTS = embedded.supported(embedded.version_of(fakeredis.__version__))


def outcome(client: Any, *command: Any) -> Any:
    try:
        return ("reply", client.execute_command(*command))
    except redis.ResponseError as exc:
        return (type(exc).__name__, str(exc))
    except Exception as exc:  # fakeredis itself fails (a Python error, not a Redis one)
        return ("crash", type(exc).__name__)


def pair() -> tuple[Any, Any]:
    """(plain, adapted) clients, each on a new server."""
    return fakeredis.FakeRedis(server=fakeredis.FakeServer()), embedded.client_for(embedded.new_server())


def snapshot(client: Any) -> dict[bytes, Any]:
    return {key: client.dump(key) for key in sorted(client.keys())}


# (script, numkeys, keys and args...) run in this order on both servers
SCRIPTS: list[tuple[Any, ...]] = [
    ("return {1, 'two', {3, 'four'}, ARGV[1], #KEYS}", 1, "k", "a"),
    ("return {1, 'two', {3, 'four'}, ARGV[1], #KEYS}", 1, "k", "b"),  # the same text, cached now
    ("return redis.call('SET', KEYS[1], ARGV[1])", 1, "k", "v"),
    ("return redis.call('GET', KEYS[1])", 1, "k"),
    ("return {redis.call('HSET', KEYS[1], 'f', 1.5), redis.call('HGETALL', KEYS[1])}", 1, "h"),
    ("return redis.status_reply('FINE')", 0),
    ("return redis.error_reply('MYERR custom')", 0),
    ("return redis.pcall('INCR', KEYS[1])", 1, "k"),
    ("return redis.call('INCR', KEYS[1])", 1, "k"),
    ("return redis.call('NOSUCHCOMMAND')", 0),
    ("return redis.call('GET')", 0),
    ("return redis.call('GET', {})", 0),
    ("return {1, nil, 3}", 0),
    ("return 3.99", 0),
    ("return cjson.encode({a = 1})", 0),
    ("if ARGV[1] == 'x' then error('boom') end return ARGV[1]", 0, "x"),
    ("if ARGV[1] == 'x' then error('boom') end return ARGV[1]", 0, "y"),  # an error poisons nothing
    ("if ARGV[1] == 'x' then error('boom') end return ARGV[1]", 0, "x"),
    ("return 1 +", 0),  # does not compile: the same error, twice
    ("return 1 +", 0),
    ("local t = {} t.x = 1 return t.x", 0),
    ("undefined_global_read = nil return tostring(some_undefined_name)", 0),
    ("leaked = 1 return 1", 0),  # assigns a global: refused after the script
    ("leaked2 = 1 return redis.call('SET', 'after-global', 1)", 0),  # refused before the call
    ("return redis.call('GET', 'after-global')", 0),
    ("return 'still runs'", 0),
    ("next = function() return nil end return 1", 0),  # reassigning a builtin is not a new global
    ("return redis.call('SET', KEYS[1], 'after-next')", 1, "k2"),
    ("leaked3 = 1 return 1", 0),  # still caught with `next` replaced
    ("return redis.call('GET', KEYS[1])", 1, "k2"),
    # redis.call and redis.pcall on the fast path: replies, key types, arity, argument
    # types, errors inside pcall, names in any case, numbers as arguments, expiry
    (
        "return {redis.call('hset', KEYS[1], 'f', 'v', 'n', 2), redis.call('HMGET', KEYS[1], 'f', 'x')}",
        1,
        "h2",
    ),
    ("return redis.call('HGET', KEYS[1], 'f')", 1, "k"),  # a string key: WRONGTYPE
    ("return redis.pcall('HGET', KEYS[1], 'f')", 1, "k"),
    ("return redis.call('GET', KEYS[1])", 1, "h2"),
    ("return {redis.pcall('GET', KEYS[1])['err']}", 1, "h2"),
    ("return redis.call('HGET', KEYS[1])", 1, "h2"),  # wrong arity
    ("return redis.pcall('HSET', KEYS[1], 'f')", 1, "h2"),
    ("return redis.call('HSET', KEYS[1], 'f', true)", 1, "h2"),  # not a string or number
    ("return redis.pcall('HSET', KEYS[1], 'f', {})", 1, "h2"),
    ("return redis.call('HINCRBY', KEYS[1], 'n', 1.5)", 1, "h2"),
    (
        "return {redis.call('HINCRBY', KEYS[1], 'n', 3), redis.call('HSET', KEYS[1], 'x', 2.25, 'y', 1e20)}",
        1,
        "h2",
    ),
    ("return redis.call('HGETALL', KEYS[1])", 1, "h2"),
    ("local ok, e = pcall(redis.call, 'HGET', KEYS[1]) return {ok and 1 or 0, type(e)}", 1, "h2"),
    ("local r = redis.pcall('GET', KEYS[1]) return {type(r), tostring(r.err)}", 1, "h2"),
    ("return redis.pcall('NOSUCHCOMMAND', KEYS[1])", 1, "h2"),
    ("return redis.pcall('SCRIPT', 'FLUSH')", 0),  # a command with subcommands, refused in scripts
    ("return redis.call('OBJECT', 'ENCODING', KEYS[1])", 1, "h2"),
    ("return redis.call('Exists', KEYS[1], KEYS[1])", 1, "h2"),
    (
        "return {redis.call('SET', KEYS[1], 'v'), redis.call('PEXPIREAT', KEYS[1], 1), "
        "redis.call('EXISTS', KEYS[1])}",
        1,
        "gone",
    ),
    ("return redis.call('GET', KEYS[1])", 1, "gone"),
    ("return {redis.call('SET', KEYS[1], 'v', 'PX', 100000), redis.call('PTTL', KEYS[1]) > 0}", 1, "px"),
    ("redis.setresp(3) return redis.call('HGETALL', KEYS[1])", 1, "h2"),
    ("return redis.call('UNLINK', KEYS[1])", 1, "px"),
    ("return redis.call()", 0),
    ("return redis.pcall()", 0),
    ("return redis.call(1, 2)", 0),
    ("return redis.call({}, 'x')", 0),
    ("return pcall(redis.call)", 0),
    # new globals before a call, however they are made, and a call after them
    ("_G.leaked4 = 1 return redis.call('SET', 'after-global', 2)", 0),
    ("_G['leaked' .. ARGV[1]] = 1 return redis.call('SET', 'after-global', 3)", 0, "5"),
    ("function leaked6() end return redis.call('SET', 'after-global', 4)", 0),
    ("rawset(_G, 'leaked7', 1) return redis.call('SET', 'after-global', 5)", 0),
    ("table.insert(_G, 1) return redis.call('SET', 'after-global', 6)", 0),
    ("leaked8 = 1 return redis.pcall('SET', 'after-global', 7)", 0),
    (
        "leaked9 = 1 local ok = pcall(redis.call, 'SET', 'after-global', 8) "
        "return redis.call('GET', 'after-global')",
        0,
    ),
    ("leaked10 = nil return redis.call('SET', 'after-global', 9)", 0),  # assigns nothing: no new global
    ("KEYS = nil return redis.call('SET', 'after-global', 10)", 0),  # removes one: not new either
    ("return {#KEYS, redis.call('GET', 'after-global')}", 1, "k"),  # KEYS set again: no error
    ("setmetatable(_G, nil) leaked11 = 1 return redis.call('SET', 'after-global', 11)", 0),
    ("return redis.call('GET', 'after-global')", 0),
    ("setmetatable(_G, {}) leaked12 = 1 return redis.call('SET', 'after-global', 12)", 0),
    ("return redis.call('GET', 'after-global')", 0),
]


def test_adapted_where_this_fakeredis_allows() -> None:
    """2.34+ 2.x is adapted (tested on 2.34.1 and 2.41.0); anything else is plain fakeredis."""
    server = embedded.new_server()
    assert embedded.adapted(server) == ADAPTS
    assert isinstance(embedded.client_for(server), fakeredis.FakeRedis)
    assert embedded.supported((2, 34, 0)) and embedded.supported((2, 41, 0))
    assert not embedded.supported((2, 33, 0)) and not embedded.supported((2, 26, 2))
    assert not embedded.supported((3, 0, 0))


@pytest.mark.skipif(not ADAPTS, reason="this fakeredis is not adapted: the plain one is the embedded one")
def test_scripts_answer_alike_on_plain_and_adapted() -> None:
    plain, fast = pair()
    for command in SCRIPTS:
        want = outcome(plain, "EVAL", *command)
        assert outcome(fast, "EVAL", *command) == want, command
    assert snapshot(fast) == snapshot(plain)


@pytest.mark.skipif(not ADAPTS, reason="this fakeredis is not adapted")
def test_evalsha_and_script_flush() -> None:
    """A flush empties fakeredis's script cache, so EVALSHA answers NOSCRIPT, and drops the
    compiled chunks with it."""
    plain, fast = pair()
    for client in (plain, fast):
        sha = client.script_load("return ARGV[1]")
        assert client.evalsha(sha, 0, "a") == b"a"
        assert client.evalsha(sha, 0, "b") == b"b"
    runtime = fast.connection_pool.connection_kwargs["server"]._lua_runtime
    assert len(runtime._chunks) == 1
    for client in (plain, fast):
        client.script_flush()
        with pytest.raises(redis.exceptions.NoScriptError):
            client.evalsha(sha, 0, "c")
        assert client.eval("return 'other'", 0) == b"other"
    assert len(runtime._chunks) == 1  # only the script run since the flush


@pytest.mark.skipif(not ADAPTS, reason="this fakeredis is not adapted")
def test_sha1hex_as_real_servers_have_it() -> None:
    _, fast = pair()
    for text in (b"", b"abc", "ünï".encode(), bytes(range(256)) * 300):
        assert fast.eval("return redis.sha1hex(ARGV[1])", 0, text) == hashlib.sha1(text).hexdigest().encode()
    assert fast.eval("return redis.sha1hex(12)", 0) == hashlib.sha1(b"12").hexdigest().encode()
    for bad in ("redis.sha1hex()", "redis.sha1hex({})", "redis.sha1hex('a', 'b')"):
        with pytest.raises(redis.ResponseError, match="wrong number of arguments"):
            fast.eval(f"return {bad}", 0)


@pytest.mark.skipif(not ADAPTS, reason="this fakeredis is not adapted")
def test_the_sha1_memo_gives_hashlibs_digests() -> None:
    """fakeredis's EVAL hashes the text again on every run; for a text an adapted runtime
    ran, the memo answers a copy of the hash object made once: the same digest, and a hash
    object that goes on like hashlib's (an update does not change the next answer)."""
    fast = embedded.client_for(embedded.new_server())
    text = "return ARGV[1] .. '" + "x" * 5000 + "'"
    sha = fast.script_load(text)
    assert sha == hashlib.sha1(text.encode()).hexdigest()
    for arg in ("a", "b", "c"):
        assert fast.evalsha(sha, 0, arg) == (arg + "x" * 5000).encode()
    assert fast.script_exists(sha) == [True]
    assert fast.eval(text, 0, "d") == ("d" + "x" * 5000).encode()  # EVAL stores a new object under sha
    assert fast.evalsha(sha, 0, "e") == ("e" + "x" * 5000).encode()

    memo = embedded._Sha1Memo(hashlib)
    data = text.encode()
    equal = b"".join([data[:1], data[1:]])  # equal, another object: not noted
    memo.note(data)
    for _ in range(2):
        h = memo.sha1(data)
        assert h.hexdigest() == hashlib.sha1(data).hexdigest()
        h.update(b"more")
        assert h.hexdigest() == hashlib.sha1(data + b"more").hexdigest()
    assert memo.sha1(equal).hexdigest() == hashlib.sha1(data).hexdigest()
    assert memo.sha1(data, usedforsecurity=False).hexdigest() == hashlib.sha1(data).hexdigest()
    assert memo.sha1().hexdigest() == hashlib.sha1().hexdigest()
    assert memo.md5(b"x").hexdigest() == hashlib.md5(b"x").hexdigest()


def test_one_client_many_threads() -> None:
    """The direct EVALSHA path serves one request at a time per client: each thread gets
    its own reply."""
    client = embedded.client_for(embedded.new_server())
    sha = client.script_load("redis.call('INCR', 'n') return ARGV[1]")
    wrong: list[Any] = []

    def work(t: int) -> None:
        for i in range(200):
            reply = client.evalsha(sha, 0, f"{t}-{i}")
            if reply != f"{t}-{i}".encode():
                wrong.append(reply)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(6)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert wrong == []
    assert client.get("n") == b"1200"
    assert (getattr(client, "_direct_conn", None) is not None) == ADAPTS  # the direct path served them


def test_closed_client_reconnects_and_a_down_server_refuses() -> None:
    server = embedded.new_server()
    client = embedded.client_for(server)
    assert client.eval("return 1", 0) == 1
    client.close()
    assert client.eval("return 2", 0) == 2
    server.connected = False
    try:
        with pytest.raises(redis.ConnectionError):
            client.eval("return 3", 0)
    finally:
        server.connected = True
    assert client.eval("return 4", 0) == 4


@pytest.mark.skipif(not ADAPTS, reason="this fakeredis is not adapted")
def test_the_registry_scripts_take_the_fast_calls() -> None:
    """The registry's scripts add no global, so the guard on _G stays engaged: their
    redis.call / redis.pcall take the fast path, and the check after each script is cheap."""
    server = embedded.new_server()
    runtime = server._lua_runtime
    reg = ThreadRegistry(embedded.client_for(server), namespace="guard", ttl=60)
    root = reg.initialize_root("acme")
    assert runtime._guarded()
    leaf = reg.extend_chain(reg.extend_chain(root, "a"), "b")
    assert reg.lookup(leaf) == "system.acme.a.b" and runtime._guarded()
    client = embedded.client_for(server)
    with pytest.raises(redis.ResponseError, match="global"):
        client.eval("leaked = 1 return redis.call('PING')", 0)
    assert not runtime._guarded()  # a global was assigned: fakeredis's own check runs now
    lua_globals = runtime._runtime.globals()
    if lua_globals[b"leaked"] is not None:  # older fakeredis (2.34) leaves it: every script fails
        assert outcome(client, "EVAL", "return 1", 0)[0] == "ResponseError"
        lua_globals[b"leaked"] = None
    assert reg.lookup(leaf) == "system.acme.a.b" and runtime._guarded()


@pytest.mark.skipif(not ADAPTS, reason="this fakeredis is not adapted")
def test_adapt_leaves_a_server_it_cannot_guard_plain() -> None:
    """A server whose Lua globals already have a metatable is not adapted (nor changed)."""
    server = fakeredis.FakeServer()
    client = fakeredis.FakeRedis(server=server)
    assert client.eval("setmetatable(_G, {}) return 1", 0) == 1
    before = server._lua_runtime
    assert not embedded.adapt(server)
    assert not embedded.adapted(server) and server._lua_runtime is before
    assert client.eval("return redis.call('PING')['ok']", 0) == b"PONG"
    assert embedded.client_for(server).eval("return redis.sha1hex", 0) is None


def test_the_process_has_one_embedded_server() -> None:
    a, b = default_embedded_client(), embedded.embedded_client()
    a.set("embedded-test-key", "1")
    try:
        assert b.get("embedded-test-key") == b"1"
        assert embedded.embedded_async_client().connection_pool.connection_kwargs["server"] is (
            embedded.embedded_server()
        )
    finally:
        a.delete("embedded-test-key")


def test_registry_on_the_embedded_client() -> None:
    reg = ThreadRegistry(embedded.client_for(embedded.new_server()), namespace="emb")
    root = reg.initialize_root("acme")
    router = reg.extend_chain(reg.extend_chain(root, "console"), "router")
    leaf = reg.extend_chain(router, "leaf")
    assert reg.lookup(leaf) == "system.acme.console.router.leaf"
    assert reg.prune_for_response(leaf) == ("router", router)
    assert reg.get_or_create("system.acme.console.router") == router


def test_async_client_many_tasks() -> None:
    """The asyncio twin: many tasks on one client, each gets its own reply; after aclose
    the client connects again."""
    server = embedded.new_server()

    async def main() -> None:
        client = embedded.async_client_for(server)
        assert isinstance(client, fakeredis.FakeAsyncRedis)
        sha = await client.script_load("redis.call('INCR', 'n') return ARGV[1]")
        replies = await asyncio.gather(*(client.evalsha(sha, 0, f"t{i}") for i in range(50)))
        assert replies == [f"t{i}".encode() for i in range(50)]
        with pytest.raises(redis.exceptions.NoScriptError):
            await client.evalsha("0" * 40, 0)
        await client.aclose()
        assert await client.eval("return redis.call('GET', 'n')", 0) == b"50"
        await client.aclose()

    asyncio.run(main())


def test_decoded_replies_and_redis_py_scripts() -> None:
    """decode_responses and redis-py's Script helper (EVALSHA, NOSCRIPT, load, again) work
    on the direct path as on redis-py's own."""
    plain, fast = (
        fakeredis.FakeRedis(server=fakeredis.FakeServer(), decode_responses=True),
        embedded.client_for(embedded.new_server(), decode_responses=True),
    )
    for client in (plain, fast):
        assert client.eval("return {'x', 1, {'ü'}}", 0) == ["x", 1, ["ü"]]
        script = client.register_script("return ARGV[1] .. '!'")
        assert script(args=["a"]) == "a!"
        client.script_flush()
        assert script(args=["b"]) == "b!"


def test_pipelines_answer_alike() -> None:
    """The transport's pipelines (script loads in MULTI/EXEC, then EVALSHA) skip RESP on the
    embedded client; a pipeline of other commands does not. Both answer as plain fakeredis."""
    plain, fast = pair()
    answers = []
    for client in (plain, fast):
        sha = client.script_load("return redis.call('HINCRBY', KEYS[1], 'n', ARGV[1])")
        client.script_flush()
        conn = client.connection_pool.get_connection()
        try:
            commands = [
                ("MULTI",),
                ("SCRIPT", "LOAD", "return redis.call('HINCRBY', KEYS[1], 'n', ARGV[1])"),
                ("EXEC",),
                ("EVALSHA", sha, 1, "h", 2),
                ("EVALSHA", "0" * 40, 0),
                ("EVAL", "return redis.call('NOPE')", 0),
                ("HINCRBY", "h", "n", 1),
            ]
            packed = conn.pack_commands(commands)
            assert isinstance(packed, embedded._Commands) == (client is fast and ADAPTS)
            conn.send_packed_command(packed)
            replies = []
            for _ in commands:
                try:
                    replies.append(conn.read_response())
                except redis.ResponseError as exc:
                    replies.append((type(exc).__name__, str(exc)))
        finally:
            client.connection_pool.release(conn)
        with client.pipeline() as pipe:
            pipe.set("k", 1).incr("k").evalsha(sha, 1, "h", 10)
            replies.append(pipe.execute())
        answers.append(replies)
    assert answers[1] == answers[0]
    assert snapshot(fast) == snapshot(plain)


def test_the_direct_connection_is_not_the_pools() -> None:
    """With max_connections=1 the pool's one connection stays free for the transport's
    pipelines (a removal) after direct calls made their own."""
    reg = ThreadRegistry(embedded.client_for(embedded.new_server(), max_connections=1), namespace="one")
    root = reg.initialize_root("acme")
    leaf = reg.extend_chain(reg.extend_chain(root, "a"), "b")
    for _ in range(3):
        assert reg.lookup(leaf) == "system.acme.a.b"
        assert reg.prune_for_response(leaf)[0] == "a"


def test_the_embedded_benchmark_prints_its_table(capsys: pytest.CaptureFixture[str]) -> None:
    """`python -m benchmarks.embedded` runs the benchmark's embedded section alone."""
    from benchmarks.embedded import main

    assert main(["--rounds", "1", "--slice", "0.01", "--pool", "2", "--ops", "lookup,extend_chain_new"]) == 0
    out = capsys.readouterr().out
    assert "| lookup |" in out and "| extend_chain_new |" in out and "plain fakeredis" in out
