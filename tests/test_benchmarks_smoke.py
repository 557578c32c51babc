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
from benchmarks.runner import MODES, run
from tests.servers import RedisServer


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

    statuses = {t["status"] for t in data["targets"]}
    assert statuses <= {"PASS", "MISS", "INFO"}
    assert {t["target"] for t in data["targets"]} >= {"extend_chain_new vs (b), 1 client"}
    assert set(data["profile"]["breakdown"]) == set(OPS)
    assert data["targets"] == rep["targets"]

    md = (tmp_path / "latest.md").read_text(encoding="utf-8")
    assert "## Targets" in md and "redis-server" in md and "(a) ours" in md


def test_cli_starts_its_own_server(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--smoke", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "latest.json").is_file()
    assert (tmp_path / "latest.md").is_file()
    assert "Targets:" in capsys.readouterr().out
