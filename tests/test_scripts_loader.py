"""The script loader: includes resolved recursively, each file once, and checked."""

from __future__ import annotations

from pathlib import Path

import pytest

from registry.scripts import ScriptLoadError, assemble, script


def _lua(tmp_path: Path, **files: str) -> Path:
    for name, text in files.items():
        (tmp_path / f"{name}.lua").write_text(text, encoding="utf-8")
    return tmp_path


def test_nested_includes_are_pasted_depth_first(tmp_path: Path) -> None:
    d = _lua(
        tmp_path,
        op="-- @include _b\nreturn b()\n",
        _a="local function a() return 1 end\n",
        _b="-- @include _a\nlocal function b() return a() + 1 end\n",
    )
    src = assemble("op", d)
    assert "-- @include" not in src
    assert src.index("function a()") < src.index("function b()") < src.index("return b()")


def test_each_file_is_pasted_once(tmp_path: Path) -> None:
    d = _lua(
        tmp_path,
        op="-- @include _core\n-- @include _b\nreturn 1\n",
        _core="local CORE = 1\n",
        _b="-- @include _core\nlocal B = CORE\n",
    )
    src = assemble("op", d)
    assert src.count("local CORE = 1") == 1
    assert src.index("local CORE") < src.index("local B")


def test_missing_include_is_an_error_naming_it(tmp_path: Path) -> None:
    d = _lua(tmp_path, op="-- @include _b\n", _b="-- @include _nowhere\n")
    with pytest.raises(ScriptLoadError, match=r"'_nowhere' not found .*op -> _b"):
        assemble("op", d)


def test_missing_script_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ScriptLoadError, match="'op' not found"):
        assemble("op", tmp_path)


def test_circular_include_is_an_error_naming_the_circle(tmp_path: Path) -> None:
    d = _lua(tmp_path, op="-- @include _a\n", _a="-- @include _b\n", _b="-- @include _a\n")
    with pytest.raises(ScriptLoadError, match=r"circular include: op -> _a -> _b -> _a"):
        assemble("op", d)


def test_self_include_is_circular(tmp_path: Path) -> None:
    d = _lua(tmp_path, op="-- @include op\n")
    with pytest.raises(ScriptLoadError, match="circular"):
        assemble("op", d)


def test_duplicate_include_in_one_file_is_an_error(tmp_path: Path) -> None:
    d = _lua(tmp_path, op="-- @include _a\n-- @include _a\n", _a="local A = 1\n")
    with pytest.raises(ScriptLoadError, match=r"op.lua includes '_a' twice"):
        assemble("op", d)


def test_an_include_must_be_a_line_of_its_own(tmp_path: Path) -> None:
    d = _lua(tmp_path, op="local x = 1 -- @include _a\nreturn x\n", _a="error()\n")
    assert "error()" not in assemble("op", d)


@pytest.mark.parametrize(
    "name",
    ["lookup", "extend_chain", "get_or_create", "prune_for_response", "register_thread", "gc", "dump"],
)
def test_shipped_scripts_assemble_without_includes_left(name: str) -> None:
    src = script(name).source
    assert "-- @include" not in src
    assert not src.startswith("#!")  # fakeredis cannot load a shebang line


def test_comment_lines_of_included_files_are_left_out(tmp_path: Path) -> None:
    d = _lua(
        tmp_path,
        op="-- the script's own comments stay\n-- @include _a\nreturn a() -- trailing stays\n",
        _a="-- helper comment\n  -- indented comment\nlocal function a() return 1 end -- kept\n",
    )
    src = assemble("op", d)
    assert "helper comment" not in src and "indented comment" not in src
    assert "local function a() return 1 end -- kept" in src
    assert "the script's own comments stay" in src and "-- trailing stays" in src
