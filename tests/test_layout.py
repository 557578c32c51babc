"""The storage layout is versioned: a namespace written by another layout is refused,
never misread, and nothing is written to it; clear() starts it afresh."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import registry
from registry import LayoutVersionError, RegistryError, ThreadRegistry
from registry.errors import _BY_CODE, from_script_error
from registry.keys import namespace_keys
from tests.conftest import keyspace

MakeRegistry = Callable[..., ThreadRegistry]
LUA = Path(__file__).resolve().parent.parent / "lua"


def _layout1_namespace(client: Any, namespace: str) -> str:
    """What layout 1 left: a salt and no 'v' in meta, and an id -> deadline + chain entry."""
    meta, threads, _ = namespace_keys(namespace)
    tid = str(uuid.uuid4())
    client.hset(meta, mapping={"salt": str(uuid.uuid4())})
    client.hset(threads, mapping={tid: (2**46).to_bytes(6, "big") + b"a\x1fb", b"": b""})
    return tid


def _writes(reg: ThreadRegistry, tid: str) -> list[Callable[[], object]]:
    return [
        lambda: reg.get_or_create("a.b"),
        lambda: reg.extend_chain(tid, "c"),
        lambda: reg.prune_for_response(tid),
        lambda: reg.register_thread(str(uuid.uuid4()), "x", "y"),
        lambda: reg.initialize_root("acme"),
        lambda: reg.initialize_table_root("t", "o"),
        lambda: reg.cleanup(tid),
        lambda: reg.gc(),
        lambda: reg.debug_dump(),
        lambda: reg.lookup(str(uuid.uuid4())),  # a miss reads meta, and sees the layout
    ]


@pytest.mark.parametrize("version", [None, "1", "3"])
def test_another_layout_is_refused_and_nothing_is_written(
    make_registry: MakeRegistry, client: Any, version: str | None
) -> None:
    tid = _layout1_namespace(client, "old")
    if version is not None:
        client.hset(namespace_keys("old")[0], "v", version)
    reg = make_registry(namespace="old")
    before = keyspace(client)
    for call in _writes(reg, tid):
        with pytest.raises(LayoutVersionError) as info:
            call()
        message = str(info.value)
        assert f"written by layout {version or '1'}" in message and "reads layout 2" in message
        assert "clear()" in message and "threadreg:{old}:meta" in message
    assert keyspace(client) == before


def test_clear_starts_the_namespace_afresh_in_this_layout(make_registry: MakeRegistry, client: Any) -> None:
    _layout1_namespace(client, "old")
    reg = make_registry(namespace="old")
    with pytest.raises(LayoutVersionError):
        reg.get_or_create("a.b")
    reg.clear()
    tid = reg.get_or_create("a.b")
    assert reg.lookup(tid) == "a.b"
    assert client.hget(namespace_keys("old")[0], "v") == b"2"


def test_a_new_namespace_records_its_layout(make_registry: MakeRegistry, client: Any) -> None:
    reg = make_registry(namespace="fresh")
    assert client.hget(namespace_keys("fresh")[0], "v") is None  # nothing written yet
    reg.lookup(str(uuid.uuid4()))
    assert client.hget(namespace_keys("fresh")[0], "v") is None  # reads write nothing
    reg.get_or_create("a")
    assert client.hget(namespace_keys("fresh")[0], "v") == b"2"


def test_layout_error_is_exported_and_mapped() -> None:
    assert registry.LayoutVersionError is LayoutVersionError
    assert issubclass(LayoutVersionError, RegistryError)
    assert isinstance(from_script_error("LAYOUT namespace x was written by layout 1"), LayoutVersionError)


def test_every_error_code_a_script_raises_is_mapped() -> None:
    codes: set[str] = set()
    for path in LUA.glob("*.lua"):
        for line in path.read_text(encoding="utf-8").splitlines():
            if "--" in line.split("'")[0]:
                continue  # a comment
            codes |= set(re.findall(r"'([A-Z]{5,}) ", line))
    assert codes >= {"BADHOP", "BADCHAIN", "BADID", "BADARG", "LAYOUT"}
    assert codes <= set(_BY_CODE), f"codes without an exception: {sorted(codes - set(_BY_CODE))}"
