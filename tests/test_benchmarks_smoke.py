"""The benchmark harness runs end to end in its smallest mode and writes its reports.

Structure only: timings on a shared machine prove nothing, so no figure is asserted.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.__main__ import main
from benchmarks.contenders import NAMES
from benchmarks.loads import OPS
from benchmarks.matrix import MATRIX
from benchmarks.runner import MODES, run
from benchmarks.server_cost import OPS as SERVER_OPS
from tests.servers import REDIS_SERVER, RedisServer


def test_smoke_run_writes_json_and_markdown(redis_server: RedisServer, tmp_path: Path) -> None:
    rep = run(MODES["smoke"], url=redis_server.url, out_dir=tmp_path)

    data = json.loads((tmp_path / "latest.json").read_text(encoding="utf-8"))
    assert data["meta"]["mode"] == "smoke"
    for field in ("date", "cores", "cpu_model", "python", "redis_py", "redis_server"):
        assert data["meta"][field], field
    assert set(data["shapes"]) == {"single", "distinct", "same"}
    for shape in data["shapes"].values():
        assert set(shape["ops"]) == set(OPS)
        for row in shape["ops"].values():
            assert set(row) == set(NAMES)
            for cell in row.values():
                assert cell["calls"] > 0
                assert cell["ops_s"] > 0
                assert cell["p50_us"] <= cell["p99_us"]

    rows = {(row["workers"], row["routing"]): row for row in data["pipeline"]["rows"]}
    assert set(rows) == {(1, "registry"), (1, "chain")}  # the pipeline beside the bus without a registry
    assert all(row["msgs_per_s"] > 0 and row["p50_ms"] <= row["p99_ms"] for row in rows.values())
    assert "## The reference pipeline, end to end" in (tmp_path / "latest.md").read_text(encoding="utf-8")

    cont = data["shapes"]["same"]["contention"]
    assert cont["ours"]["anomalous_chains"] == 0  # correctness, not timing: must hold in any mode
    assert sum(cont["ours"]["clients_handed_different_ids"].values()) == 0
    assert cont["watch"]["anomalous_chains"] == 0
    assert "retries_total" in cont["watch"]

    assert set(data["memory"]) == {"ours", "plain"}
    assert all(r["bytes_per_thread"] > 0 for rows in data["memory"].values() for r in rows.values())
    if "skipped" not in data["batches"]:
        for row in data["batches"]["ops"].values():
            assert {"sync/single", "sync/100", "async/single", "async/100"} <= set(row)

    sc = data["server_cost"]
    assert sc["noop_us"] > 0
    assert set(sc["ops"]) == set(SERVER_OPS)
    for row in sc["ops"].values():
        assert row["us"] > 0 and row["ratio"] > 0 and row["ceiling_ops_s"] > 0
    matrix = data["server_matrix"]
    assert set(matrix) == {label for label, _, _ in MATRIX}
    assert "ops" in matrix["Redis 7.0"]  # the redis-server these tests run on
    for body in matrix.values():  # a build that is not unpacked says so instead
        assert "missing" in body or set(body["ops"]) == set(SERVER_OPS), body
    flat = data["server_flat"]["sizes"]
    assert set(flat) == {str(n) for n in MODES["smoke"].flat_sizes}
    assert all(us > 0 for row in flat.values() for us in row["us"].values())
    assert set(data["server_flat"]["growth"]) == {*SERVER_OPS, "noop"}
    assert data["server_worst"] and all(us > 0 for us in data["server_worst"].values())
    prof = data["server_profile"]
    assert set(prof) == {*SERVER_OPS, "noop"}
    assert prof["lookup"]["redis_calls_per_op"] >= 1 and prof["lookup"]["evalsha_us"] > 0
    assert prof["noop"]["redis_calls_per_op"] == 0
    emb = data["embedded"]["ops"]
    assert set(emb) == set(SERVER_OPS)
    for row in emb.values():
        assert set(row) == {"embedded", "plain", "dict"} and all(c["ops_s"] > 0 for c in row.values())

    fb = data["floor_budget"]
    assert set(fb["shapes"]) >= {"floor", "write skeleton", "extend_chain_new", "extend_chain_existing"}
    assert fb["shapes"]["floor"]["x_noop"] == 1.0 and fb["shapes"]["floor"]["vs_floor"] == 1.0
    # (Server time, not wall: the spins' server µs grow with their length on any machine.)
    assert fb["shapes"]["spin 3000"]["server_us"] > fb["shapes"]["spin 250"]["server_us"]
    assert all(r["wall_us"] > 0 and r["server_us"] > 0 for r in fb["shapes"].values())
    names = {t["target"] for t in data["targets"]}
    assert any(n.startswith("floor budget: ") for n in names)
    for op in SERVER_OPS:
        assert f"server: {op} x the no-op script" in names
    assert {"embedded: extend_chain_new ops/s", "embedded: lookup ops/s"} <= names
    assert sum(n.endswith(" at the input limits") for n in names) == len(data["server_worst"])
    assert any(" threads vs " in n for n in names)

    statuses = {t["status"] for t in data["targets"]}
    assert statuses <= {"PASS", "MISS", "INFO"}
    assert {t["target"] for t in data["targets"]} >= {"extend_chain_new vs (b), 1 client"}
    assert set(data["profile"]["breakdown"]) == set(OPS)
    assert data["targets"] == rep["targets"]

    md = (tmp_path / "latest.md").read_text(encoding="utf-8")
    assert "## Targets" in md and "redis-server" in md and "(a) ours" in md
    for section in (
        "## Server cost per operation",
        "### Across servers",
        "### Flat with size",
        "### Worst case at the input limits",
        "### Where the server µs go",
        "## What 0.85x of the floor leaves a call",
        "## Embedded default backend",
    ):
        assert section in md, section


def test_profile_shows_commands_per_operation(
    redis_server: RedisServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["profile", "extend_chain_new", "--calls", "5", "--url", redis_server.url]) == 0
    out = capsys.readouterr().out
    assert "extend_chain_new:" in out and "per call on the server" in out
    assert "hset" in out  # a write's script writes: its own command line
    assert "noop:" in out and "pyinstrument" in out


def test_cli_starts_its_own_server(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--smoke", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "latest.json").is_file()
    assert (tmp_path / "latest.md").is_file()
    assert "Targets:" in capsys.readouterr().out


def test_instruction_counts_per_operation_and_against_a_revision() -> None:
    """`python -m benchmarks.instructions`: counts inside EVALSHA under callgrind, for this
    checkout's scripts and those of a git revision, in one server."""
    from benchmarks.instructions import measure, scripts_at, table
    from registry.scripts import script

    head = scripts_at("HEAD")
    assert head("lookup").source  # lua/ at HEAD, assembled by this loader
    result = measure(REDIS_SERVER, ["lookup", "extend_chain_new"], 20, {"this": script, "ref": head})
    for variant in ("this", "ref"):
        counts = result[variant]
        assert set(counts) == {"noop", "lookup", "extend_chain_new"}
        # A script does more than `return 1`, and a write more than a read.
        assert 0 < counts["noop"] < counts["lookup"] < counts["extend_chain_new"]
    text = table(result)
    assert "| extend_chain_new |" in text and "this / ref" in text


def test_the_floor_budget_is_where_the_fitted_line_reaches_the_bar() -> None:
    from benchmarks.floor_budget import SPINS, budget, budget_text

    def shapes(slope: float) -> dict[str, dict[str, float]]:
        spins = {f"spin {k}": {"server_us": 4 + k / 100, "wall_us": 120 + slope * k / 100} for k in SPINS}
        return {"floor": {"server_us": 4.0, "wall_us": 120.0}, **spins}

    # wall = 116 + server: 120 / 0.85 = 141.18 µs of wall at 25.18 server µs
    assert budget(shapes(1.0)) == {"slope_wall_per_server_us": 1.0, "server_us": 25.18, "x_noop": 6.29}
    flat = budget(shapes(-1.0))  # walls that fell as server time grew: noise, no budget
    assert flat["server_us"] is None and flat["x_noop"] is None
    assert budget_text({"bar": 0.85, "budget": flat}).startswith("no fit")
