"""The embedded backend: an in-process fakeredis server with Lua, made fast enough to be a default.

fakeredis runs our scripts correctly but slowly: on every EVAL/EVALSHA it compiles the whole
source again (a 24 KB script costs about 0.5 ms to compile), hashes it again, runs a full Lua
``collectgarbage()``, and checks for new Lua globals by copying the globals table into a
Python set, before every ``redis.call`` as well as after the script; every ``redis.call``
resolves the command's name again; and redis-py packs every command into RESP that fakeredis
then parses back. `adapt` changes how those things are done on one FakeServer, and nothing
else: the script still arrives by EVALSHA through the same transport, fakeredis still looks
its SHA up in its own script cache (so SCRIPT FLUSH still makes the next EVALSHA answer
NOSCRIPT), runs it in its own Lua runtime, runs each command of ``redis.call`` with its own
command code, and converts its reply and its errors itself.

- Compiled chunks are kept by source text. Compiling a text always gives the same chunk, so
  this is memoisation; the cache is dropped whenever fakeredis replaces its script cache
  (SCRIPT FLUSH does) and when it grows past a bound. A text that does not compile is not
  kept: fakeredis's own ``execute`` is called with it, and raises its usual error.
- After each script one incremental GC step replaces the full collection (Lua's automatic
  collector keeps running as well, so memory stays bounded).
- New globals are noticed by a metatable on ``_G`` whose ``__newindex`` (which Lua calls
  for any assignment to a key ``_G`` does not hold) marks the runtime unclean and sets the
  key as without it. While clean, the check before each ``redis.call`` and after the script
  costs nothing; once unclean, fakeredis's own check runs (over the whole of ``_G``, in Lua
  first and, when that finds a new global, fakeredis's, which raises and removes it, as
  before), and a check that finds none makes the runtime clean again. A key set without an
  assignment (``rawset(_G, ...)``, ``table.insert(_G, ...)``, Python code) does not pass
  ``__newindex``: a chunk whose text names ``rawset``, ``insert`` or ``python`` runs with
  the full check before every call; any other is caught by the check after the script, not
  at its next ``redis.call``. A script that removes or replaces ``_G``'s metatable leaves
  that server with the full checks.
- ``redis.call`` / ``redis.pcall``, while clean, resolve a command name (as the script
  spells it) once into fakeredis's signature for it, then do what fakeredis's own do: the
  socket's ``_run_command`` (arity, argument parsing, key types, expiry, the command,
  notifications) and ``_convert_redis_result``; errors are raised, or for pcall returned,
  as fakeredis does. Names that do not resolve, and commands with subcommands, take
  fakeredis's own path.
- fakeredis's EVAL hashes the script text again on every run; a memo in its scripting
  module answers for the text objects an adapted runtime ran (`_Sha1Memo`: the same
  digest, by object identity; process-wide, since the module is).
- ``redis.sha1hex``, which real servers have and fakeredis lacks (the scripts then take
  the same path on both).
- The clients `client_for` / `async_client_for` make hand EVALSHA and EVAL, and the
  transport's pipelines, to fakeredis's command processing without RESP (see
  `_direct_client_class` and `_direct_connection_class`); their sockets queue replies in a
  SimpleQueue.

This reaches into fakeredis internals of the shared-Lua-runtime design, which fakeredis
2.34 introduced (before it, each EVAL built a new runtime, and nothing can be cached).
Tested on 2.34.1 and 2.41.0 (lupa 2.8, Lua 5.1); the lines it relies on (the runtime and
wrappers `_get_server_runtime` keeps on the server, ``lua_runtime.execute(script)`` and
``execute("collectgarbage()")`` in EVAL, ``hashlib.sha1(script)`` there,
`_check_for_lua_globals`, `_lua_redis_call` / `_lua_redis_pcall` and the socket methods
they use, `_process_command`) read the same in every release between. `adapt` applies to
fakeredis 2.34 and later 2.x only, checks that every internal it uses is there and has the
expected kind, then runs a probe script through fakeredis's own ``redis.call`` and through
the fast one (replies, key-type, arity and argument errors, pcall); if anything differs it
leaves the server as it was and returns False, and the embedded client is plain fakeredis
(correct, only slower; tested on 2.33.0, where the behaviour suites pass on plain
fakeredis as on the adapted one).
"""

from __future__ import annotations

import asyncio
import hashlib
import queue
import sys
import threading
import uuid
from typing import Any

import redis

from .errors import RegistryError

MIN_VERSION = (2, 34)  # the first fakeredis with one Lua runtime per server
MAX_CHUNKS = 256  # compiled chunks kept per server (our scripts are 16)
MAX_NAMES = 1024  # command names (as scripts spell them) resolved once per server
MAX_TEXTS = 64  # script texts whose SHA-1 is kept (`_Sha1Memo`), for the process (ours are 16)

_lock = threading.Lock()
_server: Any = None  # the process's embedded FakeServer, made on first use


def _fakeredis() -> Any:
    try:
        import fakeredis
    except ImportError:  # pragma: no cover - depends on the install
        raise RegistryError(
            "the embedded backend needs fakeredis with Lua: pip install 'redis-thread-registry[embedded]'"
        ) from None
    return fakeredis


def embedded_server() -> Any:
    """The process's embedded FakeServer, made on first use."""
    global _server
    with _lock:
        if _server is None:
            _server = new_server()
        return _server


def new_server() -> Any:
    """A new FakeServer, adapted when this fakeredis allows it (else plain)."""
    server = _fakeredis().FakeServer()
    adapt(server)
    return server


def embedded_client() -> Any:
    """An in-process fakeredis client with Lua on the process's embedded server: the default
    when no Redis is given. Every call returns a new client on the same server."""
    return client_for(embedded_server())


def client_for(server: Any, **kwargs: Any) -> Any:
    """A fakeredis.FakeRedis on `server`; on an adapted server one that hands EVALSHA and
    EVAL to the fake server directly (see `_direct_client_class`)."""
    fakeredis = _fakeredis()
    cls = _direct_client_class(fakeredis, "sync") if adapted(server) else fakeredis.FakeRedis
    return cls(server=server, **kwargs)


def async_client_for(server: Any, **kwargs: Any) -> Any:
    """As client_for, a fakeredis.FakeAsyncRedis."""
    fakeredis = _fakeredis()
    cls = _direct_client_class(fakeredis, "aio") if adapted(server) else fakeredis.FakeAsyncRedis
    return cls(server=server, **kwargs)


def embedded_async_client() -> Any:
    """As embedded_client, a fakeredis.FakeAsyncRedis (for AsyncThreadRegistry)."""
    return async_client_for(embedded_server())


def version_of(text: str) -> tuple[int, ...]:
    """(2, 41, 0) from "2.41.0"; from the first part that is not a plain number on, nothing."""
    out: list[int] = []
    for part in text.split("."):
        if not part.isdigit():
            break
        out.append(int(part))
    return tuple(out)


def supported(version: tuple[int, ...]) -> bool:
    """Whether `adapt` tries this fakeredis version: 2.34 and later 2.x."""
    return MIN_VERSION <= version < (3,)


def adapted(server: Any) -> bool:
    """Whether `adapt` took on this server."""
    return isinstance(getattr(server, "_lua_runtime", None), _FastRuntime)


def adapt(server: Any) -> bool:
    """Install the adaptation on a new FakeServer; True if it took, False (server unchanged,
    plain fakeredis) when this fakeredis is not one it was made for."""
    if adapted(server):
        return True
    fakeredis = _fakeredis()
    if not supported(version_of(getattr(fakeredis, "__version__", ""))):
        return False
    try:
        runtime, socket_class = _server_runtime(fakeredis, server)
        if not _has_expected_internals(server, runtime):
            return False
        fast = _FastRuntime(server, runtime, socket_class)
    except Exception:
        return False
    lua_redis = runtime.globals()[b"redis"]
    saved = {name: lua_redis[name] for name in (b"call", b"pcall", b"sha1hex")}
    if not fast.guard_globals():
        return False
    server._lua_runtime = fast
    lua_redis[b"call"], lua_redis[b"pcall"] = fast.redis_call, fast.redis_pcall
    if saved[b"sha1hex"] is None:
        lua_redis[b"sha1hex"] = fast.sha1hex
    if _probe(fakeredis, server):
        fast.forget_chunks()
        fast._memo = _sha1_memo(socket_class)
        return True
    server._lua_runtime = runtime
    for name, value in saved.items():
        lua_redis[name] = value
    fast.unguard_globals()
    return False


def _server_runtime(fakeredis: Any, server: Any) -> tuple[Any, type]:
    """fakeredis's shared Lua runtime for `server`, made the way its EVAL makes it
    (``ScriptingCommandsMixin._get_server_runtime``, 2.34+), on a connection of our own;
    and the class of fakeredis's sockets."""
    client = fakeredis.FakeRedis(server=server)
    conn = client.connection_pool.make_connection()
    try:
        conn.connect()
        return conn._sock._get_server_runtime(server), type(conn._sock)
    finally:
        conn.disconnect()
        client.close()


def _has_expected_internals(server: Any, runtime: Any) -> bool:
    """What the adaptation relies on, as fakeredis 2.34-2.41 keep it on the server."""
    expected = getattr(server, "_lua_expected_globals", None)
    current = getattr(server, "_lua_current_socket", None)
    cache = getattr(server, "script_cache", None)
    if type(runtime).__name__ != "LuaRuntime" or not hasattr(runtime, "compile"):
        return False
    if not isinstance(expected, set) or not isinstance(current, list) or len(current) != 1:
        return False
    if not isinstance(cache, dict):
        return False
    lua_redis = runtime.globals()[b"redis"]
    return lua_redis is not None and lua_redis[b"call"] is not None and lua_redis[b"pcall"] is not None


# Replies and errors of redis.call / redis.pcall, each as its text, on a key of the probe's own.
_PROBE = b"""
local k, out = KEYS[1], {ARGV[1], redis.call('PING')['ok'], redis.pcall('NOSUCHCMD')['err'] ~= nil, #KEYS}
local function add(r)
  if type(r) == 'table' and r.err then r = 'err ' .. tostring(r.err) end
  out[#out + 1] = r
end
add(redis.call('HSET', k, 'f', ARGV[1], 'n', 2))
add(redis.pcall('hget', k, 'f'))
add(redis.call('HMGET', k, 'f', 'nope'))
add(redis.pcall('HINCRBY', k, 'n', 1.5))
add(redis.pcall('GET', k))
add(redis.pcall('HGET', k))
add(redis.pcall('HGET', k, {}))
add(redis.call('PEXPIRE', k, 100000))
add(redis.call('PTTL', k) > 0)
add(redis.pcall('SCRIPT', 'FLUSH'))
add(redis.call('DEL', k))
add(redis.call('EXISTS', k))
return out
"""


def _probe(fakeredis: Any, server: Any) -> bool:
    """Run a script that calls redis.call and redis.pcall with fakeredis's own (once) and
    the fast ones (twice: compiled, then cached); True if all three answer alike and as
    expected. Leaves no script or key behind."""
    before = set(server.script_cache)
    client = fakeredis.FakeRedis(server=server)
    runtime = server._lua_runtime
    key = f"registry.embedded.probe:{uuid.uuid4()}"
    try:
        runtime.fast_calls(False)
        want = client.eval(_PROBE, 1, key, "v")
        runtime.fast_calls(True)
        got = [client.eval(_PROBE, 1, key, "v") for _ in range(2)]
        errors = want[7:11] + want[13:14]
        ok = want[:7] == [b"v", b"PONG", 1, 1, 2, b"v", [b"v", None]]
        ok = ok and want[11:13] + want[14:] == [1, 1, 1, 0]
        ok = ok and all(type(e) is bytes and e.startswith(b"err ") for e in errors)
        ok = ok and len(want) == 16 and all(g == want for g in got)
    except Exception:
        ok = False
    finally:
        runtime.fast_calls(True)
        try:
            client.delete(key)  # the script deletes it, unless it stopped half way
        except Exception:
            ok = False
        client.close()
    for sha in set(server.script_cache) - before:
        del server.script_cache[sha]
    return bool(ok)


def _sha1hex(data: bytes) -> bytes:
    return hashlib.sha1(data).hexdigest().encode()


DIRECT_COMMANDS = frozenset(("EVALSHA", "EVAL"))
_direct_classes: dict[str, Any] = {}


def _direct_client_class(fakeredis: Any, kind: str = "sync") -> Any:
    """A FakeRedis (or FakeAsyncRedis) whose EVALSHA and EVAL skip the wire: redis-py
    would pack the command into RESP and take a pooled connection, and fakeredis would
    parse the RESP back: about 60 µs a call. Here the command's fields go straight to
    fakeredis's own command processing (``FakeSocket._process_command``: ACL, server
    lock, arity, NOSCRIPT, the script run) on one connection of this client's, one
    request at a time, and the reply is read, decoded and raised by the connection's own
    ``read_response``. Every other command, and any call with options, takes redis-py's
    ordinary path."""
    if kind in _direct_classes:
        return _direct_classes[kind]

    class EmbeddedRedis(fakeredis.FakeRedis):  # type: ignore[misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            pool = self.connection_pool
            pool.connection_class = _direct_connection_class(pool.connection_class, "sync")
            self._direct_lock = threading.Lock()
            self._direct_conn: Any = None

        def execute_command(self, *args: Any, **options: Any) -> Any:
            if options or args[0] not in DIRECT_COMMANDS or self.connection is not None:
                return super().execute_command(*args, **options)
            with self._direct_lock:
                conn = self._direct_conn
                if conn is None:
                    conn = self._direct_conn = _own_connection(self.connection_pool)
                if _needs_connecting(conn):
                    conn.disconnect()  # closed or killed (CLIENT KILL): reconnect, as redis-py would
                    conn.connect()
                _process(conn, args)
                return conn.read_response()

        def close(self) -> None:
            # No lock: redis-py's __del__ calls close(), perhaps while this thread holds it.
            conn, self._direct_conn = getattr(self, "_direct_conn", None), None
            if conn is not None:
                conn.disconnect()
            super().close()

    class EmbeddedAsyncRedis(fakeredis.FakeAsyncRedis):  # type: ignore[misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            pool = self.connection_pool
            pool.connection_class = _direct_connection_class(pool.connection_class, "aio")
            self._direct_lock = asyncio.Lock()
            self._direct_conn: Any = None

        async def execute_command(self, *args: Any, **options: Any) -> Any:
            if options or args[0] not in DIRECT_COMMANDS or self.connection is not None:
                return await super().execute_command(*args, **options)
            async with self._direct_lock:
                conn = self._direct_conn
                if conn is None:
                    conn = self._direct_conn = _own_connection(self.connection_pool)
                if _needs_connecting(conn):
                    await conn.disconnect()
                    await conn.connect()
                _process(conn, args)
                return await conn.read_response()

        async def aclose(self, close_connection_pool: bool | None = None) -> None:
            async with self._direct_lock:
                if self._direct_conn is not None:
                    await self._direct_conn.disconnect()
                    self._direct_conn = None
            await super().aclose(close_connection_pool)

    _direct_classes.update(sync=EmbeddedRedis, aio=EmbeddedAsyncRedis)
    return _direct_classes[kind]


# What the transport pipelines (script loads in MULTI/EXEC, script runs, the acknowledgement);
# none of them blocks, so handing them over one by one is what fakeredis's parser would do.
DIRECT_PIPELINED = frozenset(("EVALSHA", "EVAL", "SCRIPT", "MULTI", "EXEC", "HINCRBY", "WAIT", "ASKING"))


class _Commands(list):  # type: ignore[type-arg]
    """A pipeline as `pack_commands` gives it to `send_packed_command`: the commands
    themselves, not their RESP."""


_direct_connections: dict[tuple[type, str], type] = {}


def _direct_connection_class(base: type, kind: str) -> type:
    """`base` (the pool's fakeredis connection class), except that a pipeline of only
    DIRECT_PIPELINED commands (the transport's plan: batches, removals, acknowledged
    writes) skips RESP: `pack_commands` keeps the commands, `send_packed_command` hands
    them to the socket's command processing one by one, and the replies are read as ever."""
    key = (base, kind)
    if key in _direct_connections:
        return _direct_connections[key]

    def direct(commands: Any) -> bool:
        return all(c and c[0] in DIRECT_PIPELINED for c in commands)

    class DirectConnection(base):  # type: ignore[misc]
        def _connect(self) -> Any:
            # The socket's reply queue: a SimpleQueue does what fakeredis asks of its Queue
            # (put, get, get_nowait, qsize, empty) without a lock and two conditions.
            sock = super()._connect()
            sock.responses = queue.SimpleQueue()
            return sock

        def pack_commands(self, commands: Any) -> Any:
            commands = list(commands)
            return _Commands(commands) if direct(commands) else super().pack_commands(commands)

        def send_packed_command(self, command: Any, check_health: bool = True) -> Any:
            if type(command) is not _Commands:
                return super().send_packed_command(command, check_health)
            if not self._sock:
                self.connect()
            try:
                for args in command:
                    _process(self, args)
            except BaseException:
                self.disconnect()
                raise

    class AsyncDirectConnection(base):  # type: ignore[misc]
        def pack_commands(self, commands: Any) -> Any:
            commands = list(commands)
            return _Commands(commands) if direct(commands) else super().pack_commands(commands)

        async def send_packed_command(self, command: Any, check_health: bool = True) -> Any:
            if type(command) is not _Commands:
                return await super().send_packed_command(command, check_health)
            if not self.is_connected:
                await self.connect()
            try:
                for args in command:
                    _process(self, args)
            except BaseException:
                await self.disconnect()
                raise

    cls = DirectConnection if kind == "sync" else AsyncDirectConnection
    _direct_connections[key] = cls
    return cls


def _own_connection(pool: Any) -> Any:
    """A connection of the pool's kind that the pool does not count: the direct path's one
    connection must not use up a `max_connections` the transport sizes its calls by."""
    return pool.connection_class(**pool.connection_kwargs)


def _needs_connecting(conn: Any) -> bool:
    sock = conn._sock
    return sock is None or sock.responses is None or bool(getattr(sock, "_killed", False))


def _process(conn: Any, args: tuple[Any, ...]) -> None:
    """Hand a command to the connection's fake socket, as its RESP parser would; the reply
    waits in the socket's response queue. Refused as the socket's ``sendall`` refuses."""
    sock = conn._sock
    if not sock._server.connected or getattr(sock, "_killed", False):
        raise redis.ConnectionError(CONNECTION_ERROR)
    encoder = conn.encoder
    encoding, errors = encoder.encoding, encoder.encoding_errors
    # As redis-py puts each argument on the wire: str (the common case) encoded, the rest by the encoder.
    fields = [a.encode(encoding, errors) if type(a) is str else _field(a, encoder) for a in args]
    sock._process_command(fields)


CONNECTION_ERROR = "FakeRedis is emulating a connection error."  # fakeredis's own words


def _field(value: Any, encoder: Any) -> bytes:
    """A command argument as redis-py would put it on the wire (str the common case)."""
    if type(value) is str:
        return value.encode(encoder.encoding, encoder.encoding_errors)
    field: bytes = encoder.encode(value)
    return field


class _CleanGlobals:
    """What `_check_for_lua_globals` sees when no new global exists: no key beyond the
    expected ones (it takes the expected set from the keys it is given)."""

    def keys(self) -> tuple[()]:
        return ()


class _FastRuntime:
    """Stands in for fakeredis's shared LuaRuntime (``server._lua_runtime``): `execute`
    runs cached chunks, the GC call after each script is a step, `globals()` is cheap while
    no new global exists, and ``redis.call`` / ``redis.pcall`` skip what they need not
    redo (`_fast_calls`); everything else is the runtime's own."""

    def __init__(self, server: Any, runtime: Any, socket_class: type) -> None:
        self._server = server
        self._runtime = runtime
        self._chunks: dict[bytes, tuple[Any, bool]] = {}
        self._chunks_of: Any = server.script_cache  # the script cache the chunks were kept for
        self._suspect = False  # a chunk that may add a global without assigning it is running
        self._memo: _Sha1Memo | None = None  # set once `adapt` has taken
        self.table_from = runtime.table_from
        expected: set[Any] = server._lua_expected_globals
        self._clean = _CleanGlobals()
        # Upvalues, not globals: a script that reassigns `next` or `collectgarbage` changes nothing here.
        self._has_new_global = runtime.eval(
            "function(expected) local next, G = next, _G return function() "
            "for k in next, G do if expected[k] == nil then return true end end return false end end"
        )(runtime.table_from(dict.fromkeys(expected, True)))
        self._gc_step = runtime.eval(
            "function() local gc = collectgarbage return function() gc('step', 0) end end"
        )()
        current = server._lua_current_socket

        # fakeredis's own redis.call / redis.pcall wrappers, handing the socket this runtime.
        def lua_call(op: Any, *args: Any) -> Any:
            return current[0]._lua_redis_call(self, expected, op, *args)

        def lua_pcall(op: Any, *args: Any) -> Any:
            return current[0]._lua_redis_pcall(self, expected, op, *args)

        self.lua_call = lua_call
        self.lua_pcall = lua_pcall
        fast_call, fast_pcall = _fast_calls(self, socket_class, current, expected)
        (
            self.redis_call,
            self.redis_pcall,
            self._install,
            self._guarded,
            self._mark_clean,
            self._mark_dirty,
            self._enable,
        ) = runtime.eval(_GUARD)(runtime.globals(), fast_call, fast_pcall, lua_call, lua_pcall)
        # redis.sha1hex as real servers have it (fakeredis lacks it): one argument, a
        # string or a number (as Lua writes it), hashed with SHA-1, lowercase hex.
        self.sha1hex = runtime.eval(
            "function(sha1) local select, type, tostring, error = select, type, tostring, error "
            "return function(...) local s = ... "
            "if select('#', ...) ~= 1 or (type(s) ~= 'string' and type(s) ~= 'number') then "
            "error('wrong number of arguments') end return sha1(tostring(s)) end end"
        )(_sha1hex)

    def guard_globals(self) -> bool:
        """Set the metatable that notices new globals on _G; False if _G already has one."""
        return bool(self._install(True))

    def unguard_globals(self) -> None:
        self._install(False)

    def fast_calls(self, enabled: bool) -> None:
        """Turn the fast redis.call / redis.pcall on or off (off: fakeredis's own, for the probe)."""
        self._enable(enabled)

    def execute(self, source: Any, *args: Any) -> Any:
        if source == "collectgarbage()" and not args:  # fakeredis's cleanup after each script
            return self._gc_step()
        if args or not isinstance(source, bytes):
            self._mark_dirty()
            return self._runtime.execute(source, *args)
        if self._chunks_of is not self._server.script_cache or len(self._chunks) >= MAX_CHUNKS:
            self._chunks = {}  # SCRIPT FLUSH (fakeredis replaced its cache), or too many kept
            self._chunks_of = self._server.script_cache
        entry = self._chunks.get(source)
        if entry is None:
            try:
                chunk = self._runtime.compile(source)
            except Exception:
                return self._runtime.execute(source)  # raises exactly as fakeredis has it raise
            entry = self._chunks[source] = (chunk, any(word in source for word in RAW_WRITERS))
        if self._memo is not None:
            self._memo.note(source)
        chunk, suspect = entry
        if not suspect:
            return chunk()
        # It may add a global without assigning it: every redis.call checks the whole of _G.
        self._suspect = True
        self._mark_dirty()
        try:
            return chunk()
        finally:
            self._suspect = False

    def forget_chunks(self) -> None:
        self._chunks = {}

    def globals(self) -> Any:
        if self._guarded():
            return self._clean
        if self._has_new_global():
            return self._runtime.globals()
        if not self._suspect:
            self._mark_clean()
        return self._clean

    def __getattr__(self, name: str) -> Any:
        return getattr(self._runtime, name)


# A chunk whose text names one of these may add a key to _G without the assignment the
# metatable of `_GUARD` notices (rawset(_G, ...), table.insert(_G, ...), Python code).
RAW_WRITERS = (b"rawset", b"insert", b"python")

# redis.call and redis.pcall as Lua functions: the fast ones (`_fast_calls`) while no global
# can have been added since fakeredis's check last found none, else fakeredis's own (whose
# check then runs over the whole of _G, raises, and removes them, as ever). A new key of _G
# is noticed by __newindex, which Lua calls for any assignment to a key _G does not have;
# the key is then set as without the metatable.
_GUARD = """
function(G, fast_call, fast_pcall, slow_call, slow_pcall)
  local rawset, getmetatable, setmetatable = rawset, getmetatable, setmetatable
  local clean, enabled = false, true
  local mt = {__newindex = function(t, k, v) clean = false rawset(t, k, v) end}
  local function call(...)
    if clean and getmetatable(G) == mt then return fast_call(...) end
    return slow_call(...)
  end
  local function pcall(...)
    if clean and getmetatable(G) == mt then return fast_pcall(...) end
    return slow_pcall(...)
  end
  local function install(on)
    clean = false
    if not on then
      if getmetatable(G) == mt then setmetatable(G, nil) end
      return true
    end
    if getmetatable(G) ~= nil then return false end
    setmetatable(G, mt)
    return true
  end
  local function guarded() return clean and getmetatable(G) == mt end
  local function mark_clean() clean = enabled and getmetatable(G) == mt end
  local function mark_dirty() clean = false end
  local function enable(on) enabled = on clean = false end
  return call, pcall, install, guarded, mark_clean, mark_dirty, enable
end
"""


def _fast_calls(runtime: _FastRuntime, socket_class: type, current: list[Any], expected: set[Any]) -> Any:
    """redis.call and redis.pcall, doing what fakeredis's ``_lua_redis_call`` and
    ``_lua_redis_pcall`` do (2.34-2.41) except its check for new globals (`_GUARD` has made
    sure there is none) and resolving the command's name again on every call: a command
    name (exact bytes) is resolved once, by the socket's own ``_name_to_func``, into the
    signature fakeredis keeps for it, and then run by the socket's own ``_run_command``
    (arity, argument parsing, key types, expiry, the command itself, keyspace notifications)
    and its reply converted by ``_convert_redis_result``, as fakeredis does. A name that
    does not resolve, or names a command with subcommands, goes to fakeredis's own."""
    import fakeredis._commands
    import fakeredis._helpers

    scripting = sys.modules[socket_class._lua_redis_call.__module__]  # type: ignore[attr-defined]
    convert_arg = scripting._convert_redis_arg
    decode_name = fakeredis._helpers.decode_command_bytes
    with_sub: set[str] = fakeredis._commands.COMMANDS_WITH_SUB
    for name in ("_name_to_func", "_run_command", "_convert_redis_result", "_lua_redis_call"):
        if not callable(getattr(socket_class, name, None)):
            raise AttributeError(name)
    signatures: dict[bytes, Any] = {}
    table_from = runtime.table_from

    def resolve(sock: Any, op: Any) -> Any:
        if type(op) is not bytes:
            return None
        name = decode_name(op)
        if name in with_sub:
            return None
        try:
            func, sig = sock._name_to_func(name)
        except Exception:
            return None
        if func is None or not isinstance(getattr(sig, "func_name", None), str):
            return None
        if len(signatures) < MAX_NAMES:
            signatures[op] = sig
        return sig

    def fast_call(op: Any, *args: Any) -> Any:
        sock = current[0]
        sig = signatures.get(op) if type(op) is bytes else None
        if sig is None:
            sig = resolve(sock, op)
            if sig is None:
                return sock._lua_redis_call(runtime, expected, op, *args)
        new_args = [arg if type(arg) is bytes else convert_arg(arg) for arg in args]
        result = sock._run_command(getattr(sock, sig.func_name), sig, new_args, True)
        return sock._convert_redis_result(runtime, result)

    def fast_pcall(op: Any, *args: Any) -> Any:
        try:
            return fast_call(op, *args)
        except Exception as ex:
            return table_from({b"err": str(ex)})

    return fast_call, fast_pcall


class _Sha1Memo:
    """Stands in for the ``hashlib`` module in fakeredis's scripting module, whose EVAL
    hashes the whole script text on every run (EVALSHA included: it looks the text up by
    SHA, then EVAL hashes it again to store it under that SHA), about 11 µs for a 21 KB
    text. A text an adapted runtime has run (`note`) is hashed once: for that very object
    (not an equal one: by identity, and the memo holds it so its id stays its own),
    ``sha1(text)`` answers a copy of the hash object made then, which is what hashing it
    again would give. Any other call is hashlib's own. Process-wide (fakeredis keeps its
    modules per process), and only ever a faster way to the same digest."""

    def __init__(self, hashlib_module: Any) -> None:
        self._hashlib = hashlib_module
        self._known: dict[int, tuple[bytes, Any]] = {}  # id(text) -> (text, its hash object or None)

    def note(self, text: bytes) -> None:
        known = self._known
        if id(text) not in known:
            if len(known) >= MAX_TEXTS:
                known.clear()
            known[id(text)] = (text, None)

    def sha1(self, *args: Any, **kwargs: Any) -> Any:
        entry = self._known.get(id(args[0])) if len(args) == 1 and not kwargs else None
        if entry is None or entry[0] is not args[0]:
            return self._hashlib.sha1(*args, **kwargs)
        text, digest = entry
        if digest is None:
            digest = self._hashlib.sha1(text)
            self._known[id(text)] = (text, digest)
        return digest.copy()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._hashlib, name)


_memo_lock = threading.Lock()


def _sha1_memo(socket_class: type) -> _Sha1Memo | None:
    """The memo in the module that defines fakeredis's EVAL, put there on first use; None
    (no memo, hashing as ever) if that module's ``hashlib`` is neither hashlib nor ours."""
    module = sys.modules.get(getattr(getattr(socket_class, "eval", None), "__module__", ""))
    with _memo_lock:
        current = getattr(module, "hashlib", None)
        if isinstance(current, _Sha1Memo):
            return current
        if current is not hashlib:
            return None
        memo = _Sha1Memo(hashlib)
        module.hashlib = memo  # type: ignore[union-attr]
        return memo
