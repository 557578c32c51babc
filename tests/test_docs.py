"""Every public class, method, property and function says what it does.

`make docs` builds the API reference from these docstrings (a broken one fails it);
this test fails when one is missing.
"""

from __future__ import annotations

import inspect

import pytest

import registry
from registry.aio import AsyncThreadRegistry
from registry.batch import AsyncBatch, Batch

CLASSES = [
    registry.ThreadRegistry,
    AsyncThreadRegistry,
    Batch,
    AsyncBatch,
    registry.Route,
    registry.ThreadInfo,
]


def _public_members(cls: type) -> list[tuple[str, object]]:
    members = []
    for name, member in inspect.getmembers(cls):
        if name.startswith("_") and name != "__init__":
            continue
        defined_here = any(name in vars(k) for k in cls.__mro__ if k.__module__.startswith("registry"))
        if defined_here and (callable(member) or isinstance(member, property)):
            members.append((name, member))
    return members


@pytest.mark.parametrize("name", registry.__all__)
def test_every_exported_name_has_a_docstring(name: str) -> None:
    value = getattr(registry, name)
    if inspect.isclass(value) or inspect.isfunction(value):
        assert (value.__doc__ or "").strip(), f"registry.{name} has no docstring"


@pytest.mark.parametrize("cls", CLASSES, ids=[c.__name__ for c in CLASSES])
def test_every_public_method_and_property_has_a_docstring(cls: type) -> None:
    missing = [name for name, member in _public_members(cls) if not (inspect.getdoc(member) or "").strip()]
    assert missing == [], f"{cls.__name__}: no docstring on {missing}"


def test_operations_document_what_they_raise() -> None:
    """The methods that can fail on input or state say so, in a Raises section."""
    for name in ("extend_chain", "prune_for_response", "register_thread", "get_or_create", "initialize_root"):
        for cls in (registry.ThreadRegistry, AsyncThreadRegistry):
            doc = inspect.getdoc(getattr(cls, name)) or ""
            assert "Raises:" in doc, f"{cls.__name__}.{name} does not say what it raises"
