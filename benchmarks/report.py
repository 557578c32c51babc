"""Writing a run down: latest.json, latest.md and latest.png under the output directory."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from registry.validation import MAX_CHAIN_BYTES, MAX_HOP_BYTES, MAX_HOPS

from . import contenders as C
from . import floor_budget
from .analysis import QUIET_NOOP_US

SHORT = {"ours": "(a) ours", "plain": "(b) plain", "watch": "(c) WATCH", "floor": "(d) floor"}


def _num(x: float) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:,.1f}"


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if a and b else "-"


def _cmp(t: dict[str, Any]) -> str:
    return str(t.get("cmp") or ("<=" if t["unit"] in ("B", "") else ">="))


def meta_line(meta: dict[str, Any]) -> list[str]:
    return [
        f"- date: {meta['date']} ({meta['mode']} mode, {meta.get('duration_s', '?')} s, {meta['server']})",
        f"- machine: {meta['cores']} cores, {meta['cpu_model']}, {meta['platform']}, "
        f"load average at start {', '.join(f'{x:.2f}' for x in meta['load_average'])}",
        f"- versions: Python {meta['python']}, redis-py {meta['redis_py']}, hiredis {meta['hiredis']}, "
        f"redis-server {meta['redis_server']}",
        f"- slices: {meta['config']['rounds']} interleaved rounds of {meta['config']['slice_s']} s per "
        "operation and contender; ops/s is the median over rounds (summed over client processes), "
        "latency percentiles pool every call",
    ]


def markdown(rep: dict[str, Any]) -> str:
    meta = rep["meta"]
    out = ["# Thread registry benchmarks", "", *meta_line(meta), ""]
    out += ["Contenders: " + "; ".join(f"{C.LABELS[n]}" for n in C.NAMES) + ".", ""]

    out += [
        "## Targets",
        "",
        "Ratios are the median over rounds of the two contenders' ops/s in that round (their slices ran "
        "side by side in time). Timing targets never fail a test.",
        "",
        "| target | this run | bar | result |",
        "|---|---:|---:|---|",
    ]
    for t in rep.get("targets", []):
        unit = t["unit"]
        value = f"{t['value']:g}{unit}" if t["bar"] is not None else str(t["value"])
        bar = "-" if t["bar"] is None else f"{_cmp(t)} {t['bar']:g}{unit}"
        detail = t.get("detail")
        status = t["status"] + (f" {json.dumps(detail, sort_keys=True)}" if detail else "")
        out.append(f"| {t['target']} | {value} | {bar} | {status} |")
    out.append("")

    out += server_markdown(rep)
    out += floor_budget_markdown(rep)
    out += embedded_markdown(rep)
    out += pipeline_markdown(rep)

    for shape, body in rep["shapes"].items():
        out += [f"## {body['label']} ({shape})", ""]
        out += [
            "ops/s (p50 / p99 latency in µs)",
            "",
            "| operation | " + " | ".join(SHORT[n] for n in C.NAMES) + " | a/b | a/c | a/d |",
            "|---|" + "---:|" * (len(C.NAMES) + 3),
        ]
        for op, row in body["ops"].items():
            cells = []
            for n in C.NAMES:
                r = row.get(n)
                cells.append(f"{_num(r['ops_s'])} ({_num(r['p50_us'])} / {_num(r['p99_us'])})" if r else "-")
            a = row.get("ours", {}).get("ops_s", 0)
            ratios = [_ratio(a, row.get(n, {}).get("ops_s", 0)) for n in ("plain", "watch", "floor")]
            out.append(f"| {op} | " + " | ".join(cells + ratios) + " |")
        out.append("")
        cont = body.get("contention")
        if cont:
            out += [
                "Contention: after the run, every stored chain was checked (two ids for one chain; "
                "chain->id and id->chain not pointing at each other), and the ids handed to different "
                "clients for the same new chain were compared.",
                "",
                "| contender | threads stored | chains with two ids | chains whose directions disagree "
                "| clients handed different ids (get_or_create / extend_chain / register_thread) "
                "| WATCH retries |",
                "|---|---:|---:|---:|---|---:|",
            ]
            for n in ("ours", "plain", "watch"):
                c = cont[n]
                handed = " / ".join(str(v) for v in c["clients_handed_different_ids"].values())
                retries = c.get("retries_total", "-")
                out.append(
                    f"| {SHORT[n]} | {c['threads']} | {c['chains_with_two_ids']} | "
                    f"{c['chains_with_disagreeing_directions']} | {handed} | {retries} |"
                )
            if cont["watch"].get("retries"):
                out.append("")
                out.append(
                    "WATCH retries by operation: "
                    + ", ".join(f"{k} {v}" for k, v in cont["watch"]["retries"].items())
                )
            out.append("")

    b = rep.get("batches", {})
    out += ["## Batches (this library, one pipeline round trip per batch)", ""]
    if "skipped" in b:
        out += [f"Skipped: {b['skipped']}", ""]
    else:
        out += [
            "| operation | api/size | ops/s | p50 / p99 µs per call or batch | vs single |",
            "|---|---|---:|---:|---:|",
        ]
        for op, row in b.get("ops", {}).items():
            for variant in b["variants"]:
                r = row.get(variant)
                if not r:
                    continue
                single = row.get(variant.split("/")[0] + "/single", {}).get("ops_s", 0)
                out.append(
                    f"| {op} | {variant} | {_num(r['ops_s'])} | {_num(r['p50_us'])} / {_num(r['p99_us'])} "
                    f"| {_ratio(r['ops_s'], single)} |"
                )
        out.append("")

    mem = rep.get("memory", {})
    out += [
        "## Memory (used_memory delta, TTL on)",
        "",
        "| contender | live threads | bytes | bytes per thread |",
        "|---|---:|---:|---:|",
    ]
    for n, rows in mem.items():
        for _, r in rows.items():
            out.append(f"| {SHORT[n]} | {r['threads']:,} | {r['bytes']:,} | {r['bytes_per_thread']} |")
    out.append("")

    prof = rep.get("profile", {})
    if prof.get("breakdown"):
        out += [
            "## Where the time of one call goes (1 client, µs per call, measured apart from the slices)",
            "",
            "build = Python builds the Call (validation, uuid4, strings); server = EVALSHA time on the "
            "server (INFO commandstats); rest = redis-py send/receive, socket, reply decoding.",
            "",
            "| operation | ours wall | build | server | rest | floor wall | floor server | floor rest |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for op, r in prof["breakdown"].items():
            out.append(
                f"| {op} | {r['ours_wall_us']} | {r['ours_build_us']} | {r['ours_server_us']} | "
                f"{r['ours_client_rest_us']} | {r['floor_wall_us']} | {r['floor_server_us']} | "
                f"{r['floor_client_rest_us']} |"
            )
        out.append("")
    for op, lines in prof.get("cprofile", {}).items():
        out += [
            f"cProfile of {op} (a missed target), top functions by own time:",
            "",
            "```",
            *lines,
            "```",
            "",
        ]
    return "\n".join(out)


def _us(x: float | None) -> str:
    return "-" if x is None else (f"{x:,.0f}" if x >= 100 else f"{x:.1f}")


def server_markdown(rep: dict[str, Any]) -> list[str]:
    """The server-cost sections: per operation, across servers, with size, at the limits, inside."""
    sc = rep.get("server_cost")
    if not sc:
        return []
    from .server_cost import TARGETS as SERVER_TARGETS

    out = [
        f"## Server cost per operation (redis-server {rep['meta'].get('redis_server')}, "
        f"{rep['meta']['server']})",
        "",
        "Server µs per call: INFO commandstats `cmdstat_evalsha` usec_per_call over "
        f"{rep['meta']['config'].get('server_calls')} calls after CONFIG RESETSTAT, median of "
        f"{rep['meta']['config'].get('server_rounds')} rounds interleaved with a `return 1` script "
        f"(the no-op: {sc['noop_us']} µs here). The ceiling of one namespace (one slot, one main "
        "thread) is 1e6 / µs operations per second, whatever the number of clients.",
    ]
    if sc["noop_us"] > QUIET_NOOP_US:
        out += [
            "",
            f"The no-op took {sc['noop_us']} µs here, against about 1.1-1.6 µs on a quiet core: the "
            "machine was loaded, which inflates a short script more than a long one, so these ratios "
            "read lower (better) than on a quiet machine.",
        ]
    out += [
        "",
        "| operation | server µs | x no-op | bar | ceiling ops/s |",
        "|---|---:|---:|---:|---:|",
    ]
    for op, r in sc["ops"].items():
        bar = SERVER_TARGETS.get(op)
        out.append(
            f"| {op} | {_us(r['us'])} | {r['ratio']:.2f}x | {'<= ' + format(bar, 'g') + 'x' if bar else '-'} "
            f"| {r['ceiling_ops_s']:,} |"
        )
    out.append("")

    mx = rep.get("server_matrix", {})
    if mx:
        labels = list(mx)
        out += [
            "### Across servers",
            "",
            "Each server its own throwaway process, started one after the other, the same procedure "
            f"({next((v['calls'] for v in mx.values() if 'calls' in v), '-')} calls x "
            f"{next((v['rounds'] for v in mx.values() if 'rounds' in v), '-')} rounds); µs (x the "
            "no-op of the same server and run).",
            "",
            "| operation | " + " | ".join(labels) + " |",
            "|---|" + "---:|" * len(labels),
            "| no-op `return 1` | "
            + " | ".join("-" if "missing" in mx[k] else f"{_us(mx[k]['noop_us'])}" for k in labels)
            + " |",
        ]
        for op in sc["ops"]:
            cells = []
            for k in labels:
                r = mx[k].get("ops", {}).get(op)
                cells.append(f"{_us(r['us'])} ({r['ratio']:.2f}x)" if r else "-")
            out.append(f"| {op} | " + " | ".join(cells) + " |")
        out.append("")
        versions = [f"{k}: {v['version']}" for k, v in mx.items() if "version" in v]
        missing = [f"{k}: {v['missing']}" for k, v in mx.items() if "missing" in v]
        out += [f"- {line}" for line in versions]
        out += [f"- missing, not measured: {line}" for line in missing]
        out.append("")

    flat = rep.get("server_flat", {}).get("sizes")
    if flat:
        sizes = sorted(flat, key=int)
        out += [
            "### Flat with size",
            "",
            "Server µs per call (median of rounds) in two namespaces of that many live threads, "
            "measured back to back in each round; growth = median over rounds of large / small, bar 1.3. "
            "Threads: "
            + ", ".join(f"{flat[z]['threads_before']:,} to {flat[z]['threads_after']:,}" for z in sizes)
            + " during the measurement.",
            "",
            "| operation | " + " | ".join(f"{int(z):,} threads" for z in sizes) + " | growth |",
            "|---|" + "---:|" * (len(sizes) + 1),
        ]
        for op, growth in rep["server_flat"]["growth"].items():
            cells = [_us(flat[z]["us"][op]) for z in sizes]
            out.append(f"| {op} | " + " | ".join(cells) + f" | {growth:.2f}x |")
        out.append("")

    worst = rep.get("server_worst")
    if worst:
        out += [
            "### Worst case at the input limits",
            "",
            f"One call each, on a chain of {MAX_HOPS} hops and {MAX_CHAIN_BYTES:,} bytes, its long hops "
            f"first (hops of up to {MAX_HOP_BYTES} bytes: the chain the input rules allow that costs a walk "
            "over its ancestors the most); and each bounded step at the most the scripts take (a gc step "
            "and a write's sweep over expired entries that carry overrides, pages of dump, check and stats "
            "over chains at the limits). Server µs of that single EVALSHA, the median of 3 runs, "
            "bar 1,000 µs (the whole shard waits while it runs).",
            "",
            "| call | server µs |",
            "|---|---:|",
            *(f"| {case} | {us:,.0f} |" for case, us in worst.items()),
            "",
        ]

    prof = rep.get("server_profile")
    if prof:
        out += [
            "### Where the server µs go",
            "",
            "Commands the scripts ran with redis.call (counted by commandstats as their own commands; "
            "EVALSHA's µs include them), per operation: calls x µs each. 'Lua' is the rest of EVALSHA's "
            "µs: the interpreter's own work (strings, sha1hex, argument checks, the call bridge, the reply). "
            "`python -m benchmarks profile` prints the same.",
            "",
            "| operation | EVALSHA µs | redis.call per op | their µs | Lua µs | commands (calls x µs) |",
            "|---|---:|---:|---:|---:|---|",
        ]
        for op, r in prof.items():
            cmds = ", ".join(
                f"{cmd} {c['per_op']:g} x {c['usec_per_call']:.1f}"
                for cmd, c in r["inner"].items()
                if c["per_op"] >= 0.01
            )
            out.append(
                f"| {op} | {_us(r['evalsha_us'])} | {r['redis_calls_per_op']:g} | {_us(r['inner_us'])} | "
                f"{_us(r['lua_rest_us'])} | {cmds or '-'} |"
            )
        out.append("")
    return out


def floor_budget_markdown(rep: dict[str, Any]) -> list[str]:
    fb = rep.get("floor_budget")
    if not fb:
        return []
    out = [
        f"## What {fb['bar']}x of the floor leaves a call (1 client, {fb['rounds']} interleaved rounds "
        f"of {fb['calls']:,} calls)",
        "",
        "Spin scripts (a loop, no effects) fitted with the floor to wall = a + b x server µs give the "
        "server time at which a call falls to the bar; beside them, a write skeleton (TIME, one HMGET, "
        "the derived id, one HSET: no input checks, no claims, no expiry) and the library's writes. "
        "*floor on pool*: the floor's no-op sent as the library sends a single call (on a pooled "
        "connection, not through redis-py's execute_command). `python -m benchmarks.floor_budget`.",
        "",
        "| shape | server µs | x no-op | floor/ours | floor on pool/ours | wall µs |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, r in fb["shapes"].items():
        out.append(
            f"| {name} | {r['server_us']} | {r['x_noop']} | {r['vs_floor']} | {r['vs_floor_on_pool']} | "
            f"{r['wall_us']} |"
        )
    out += [
        "",
        f"Budget: {floor_budget.budget_text(fb)}.",
        "",
    ]
    return out


def pipeline_markdown(rep: dict[str, Any]) -> list[str]:
    pl = rep.get("pipeline")
    if not pl:
        return []
    from .pipeline import table

    return [
        "## The reference pipeline, end to end",
        "",
        f"`thread-registry pipeline` (Redis Streams, {pl['requests']} requests per run, {pl['window']} in "
        f"flight, median of {pl['rounds']} rounds), against the same bus with the registry taken out "
        "(each message carries its whole chain), alternating in the same run. msgs/s: stream messages "
        "handled per second; p50/p99: request to answer.",
        "",
        table(pl["rows"]),
        "",
    ]


def embedded_markdown(rep: dict[str, Any]) -> list[str]:
    emb = rep.get("embedded")
    if not emb:
        return []
    v = emb.get("versions", {})
    out = [
        "## Embedded default backend (no Redis given)",
        "",
        f"This library on `{emb['backend']}` (fakeredis {v.get('fakeredis')}, lupa {v.get('lupa')}; "
        "what `registry.default.embedded_client()` returns), beside the same on plain fakeredis (not "
        "adapted) and a dict under a lock (the seed's in-process design, no TTL). 1 client, in this "
        "process, interleaved rounds. ops/s (p50 / p99 µs).",
        "",
        "| operation | embedded | plain fakeredis | embedded / plain | dict under a lock | dict / embedded |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for op, row in emb["ops"].items():
        e, p, d = row.get("embedded"), row.get("plain"), row.get("dict")
        cell = [
            f"{_num(r['ops_s'])} ({_num(r['p50_us'])} / {_num(r['p99_us'])})" if r else "-" for r in (e, p, d)
        ]
        rate = {name: (r["ops_s"] if r else 0) for name, r in (("e", e), ("p", p), ("d", d))}
        out.append(
            f"| {op} | {cell[0]} | {cell[1]} | {_ratio(rate['e'], rate['p'])} | {cell[2]} "
            f"| {_ratio(rate['d'], rate['e'])} |"
        )
    out.append("")
    return out


def chart(rep: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {"ours": "#1f77b4", "plain": "#ff7f0e", "watch": "#2ca02c", "floor": "#7f7f7f"}
    fig, axes = plt.subplots(4, 2, figsize=(15, 18))
    meta = rep["meta"]
    fig.suptitle(
        f"Thread registry benchmarks, {meta['date']} ({meta['mode']}): "
        f"{meta['cores']} cores {meta['cpu_model']}, "
        f"Python {meta['python']}, redis-py {meta['redis_py']}, redis-server {meta['redis_server']}",
        fontsize=10,
    )
    panels = list(rep["shapes"].items())
    for ax, (_, body) in zip(axes.flat[:3], panels, strict=False):
        ops = list(body["ops"])
        width = 0.8 / len(C.NAMES)
        for k, n in enumerate(C.NAMES):
            vals = [body["ops"][op].get(n, {}).get("ops_s", 0) for op in ops]
            xs = [i + (k - (len(C.NAMES) - 1) / 2) * width for i in range(len(ops))]
            ax.bar(xs, vals, width, label=SHORT[n], color=colors[n])
        ax.set_xticks(range(len(ops)), [op.replace("_", "_\n", 1) for op in ops], fontsize=8)
        ax.set_ylabel("ops/s")
        ax.set_title(body["label"], fontsize=10)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=7)

    ax = axes.flat[3]
    b = rep.get("batches", {})
    if "ops" in b:
        ops = list(b["ops"])
        vs = b["variants"]
        width = 0.8 / len(vs)
        cmap = plt.get_cmap("viridis")
        for k, v in enumerate(vs):
            vals = [b["ops"][op].get(v, {}).get("ops_s", 0) for op in ops]
            xs = [i + (k - (len(vs) - 1) / 2) * width for i in range(len(ops))]
            ax.bar(xs, vals, width, label=v, color=cmap(k / max(1, len(vs) - 1)))
        ax.set_xticks(range(len(ops)), ops, fontsize=8)
        ax.set_yscale("log")
        ax.set_ylabel("ops/s (log)")
        ax.legend(fontsize=7, ncol=2)
    ax.set_title("(a) batches: api/size, 1 client", fontsize=10)
    ax.grid(axis="y", alpha=0.3)

    ax = axes.flat[4]
    mem = rep.get("memory", {})
    names = list(mem)
    sizes = sorted({s for rows in mem.values() for s in rows}, key=int)
    width = 0.8 / max(1, len(names))
    for k, n in enumerate(names):
        vals = [mem[n].get(s, {}).get("bytes_per_thread", 0) for s in sizes]
        xs = [i + (k - (len(names) - 1) / 2) * width for i in range(len(sizes))]
        bars = ax.bar(xs, vals, width, label=SHORT[n], color=colors[n])
        ax.bar_label(bars, fmt="%.0f", fontsize=8)
    from .analysis import MEMORY_BAR

    ax.axhline(MEMORY_BAR, color="red", linestyle="--", linewidth=1, label=f"target {MEMORY_BAR:g} B")
    ax.set_xticks(range(len(sizes)), [f"{int(s):,} threads" for s in sizes], fontsize=8)
    ax.set_ylabel("bytes per live thread")
    ax.set_title("memory, TTL on", fontsize=10)
    ax.legend(fontsize=7)
    ax.grid(axis="y", alpha=0.3)

    ax = axes.flat[5]
    single = rep["shapes"].get("single", {}).get("ops", {})
    ops = list(single)
    width = 0.8 / len(C.NAMES)
    for k, n in enumerate(C.NAMES):
        vals = [single[op].get(n, {}).get("p50_us", 0) for op in ops]
        xs = [i + (k - (len(C.NAMES) - 1) / 2) * width for i in range(len(ops))]
        ax.bar(xs, vals, width, label=SHORT[n], color=colors[n])
    ax.set_xticks(range(len(ops)), [op.replace("_", "_\n", 1) for op in ops], fontsize=8)
    ax.set_ylabel("p50 latency, µs (lower is better)")
    ax.set_title("p50 latency, 1 client (p99 in latest.md)", fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7)

    ax = axes.flat[6]
    columns = {"this run": rep.get("server_cost", {})}
    columns.update({k: v for k, v in rep.get("server_matrix", {}).items() if "ops" in v})
    ops = list(rep.get("server_cost", {}).get("ops", {}))
    if ops:
        from .server_cost import TARGETS as SERVER_TARGETS

        width = 0.8 / len(columns)
        cmap = plt.get_cmap("tab10")
        for k, (label, body) in enumerate(columns.items()):
            vals = [body["ops"].get(op, {}).get("ratio", 0) for op in ops]
            xs = [i + (k - (len(columns) - 1) / 2) * width for i in range(len(ops))]
            ax.bar(xs, vals, width, label=label, color=cmap(k))
        ax.scatter(
            range(len(ops)),
            [SERVER_TARGETS.get(op, 0) for op in ops],
            marker="_",
            s=400,
            color="black",
            label="bar",
            zorder=3,
        )
        ax.set_xticks(range(len(ops)), [op.replace("_", "_\n", 1) for op in ops], fontsize=8)
        ax.legend(fontsize=7)
    ax.set_ylabel("server µs, x the no-op script")
    ax.set_title("server cost per operation (commandstats), lower is better", fontsize=10)
    ax.grid(axis="y", alpha=0.3)

    ax = axes.flat[7]
    emb = rep.get("embedded", {}).get("ops", {})
    ops = list(emb)
    for k, (n, color) in enumerate((("embedded", "#1f77b4"), ("dict", "#7f7f7f"))):
        vals = [emb[op].get(n, {}).get("ops_s", 0) for op in ops]
        xs = [i + (k - 0.5) * 0.4 for i in range(len(ops))]
        ax.bar(xs, vals, 0.4, label=n, color=color)
    if ops:
        ax.set_yscale("log")
        ax.set_xticks(range(len(ops)), [op.replace("_", "_\n", 1) for op in ops], fontsize=8)
        ax.legend(fontsize=7)
    ax.set_ylabel("ops/s (log)")
    ax.set_title("embedded default backend vs a dict under a lock, 1 client", fontsize=10)
    ax.grid(axis="y", alpha=0.3)

    fig.tight_layout(rect=(0, 0, 1, 0.97))
    fig.savefig(path, dpi=90)
    plt.close(fig)


def console(rep: dict[str, Any]) -> str:
    """The short summary printed at the end: targets with PASS/MISS."""
    lines = ["", "Targets:"]
    for t in rep.get("targets", []):
        bar = "" if t["bar"] is None else f" (bar {_cmp(t)} {t['bar']:g}{t['unit']})"
        lines.append(f"  {t['status']:4}  {t['target']}: {t['value']:g}{t['unit']}{bar}")
    return "\n".join(lines)


def write_all(rep: dict[str, Any], out_dir: Path) -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": out_dir / "latest.json", "md": out_dir / "latest.md", "png": out_dir / "latest.png"}
    paths["json"].write_text(json.dumps(rep, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    paths["md"].write_text(markdown(rep) + "\n", encoding="utf-8")
    try:
        chart(rep, paths["png"])
    except ImportError:  # matplotlib is in the `bench` extra; JSON and Markdown do not need it
        del paths["png"]
    return paths
