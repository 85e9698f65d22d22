"""Batch throughput: the CLI's batch driver vs Redis Streams workers, by batch size and workers.

    python -m eval.bench_serving [--model qwen2.5-1.5b] [--n 16] [--batch-sizes 1,8,16]
                                 [--workers 2]

Every configuration scores the same n abstracts after its models are loaded (load time is
reported apart), so the figures are steady-state abstracts/s:
- `cli`: `Pipeline.process` over chunks of `graph.run.CHUNK`, in this process, all cores;
- `stream bB wW`: W `python -m graph.stream work` processes (torch threads = cores / W) on a
  redis-server this script starts on loopback; timed from produce to the last result.
Per core = abstracts/s divided by the cores the configuration uses (all of them, in each).
Writes reports/serving/<name>.{json,md,png}.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import cast

from core.io import InputRow
from core.settings import PROJECT_ROOT, load_settings
from eval.loadtest import REPORT_DIR, sample_abstracts
from graph.stream import Entry, Keys, connect, ensure_group, produce


@contextmanager
def local_redis() -> Iterator[str]:
    """A throw-away redis-server on a free loopback port; stopped on exit."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("error: redis-server not found (apt-get install -y redis-server)")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with tempfile.TemporaryDirectory() as folder:
        proc = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", folder, "--save", "",
             "--appendonly", "yes", "--appendfsync", "always"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        url = f"redis://127.0.0.1:{port}/0"
        try:
            for _ in range(200):
                try:
                    connect(url)
                    break
                except Exception:  # noqa: BLE001 - not up yet
                    time.sleep(0.05)
            yield url
        finally:
            proc.terminate()
            proc.wait(timeout=10)


def bench_cli(rows: list[InputRow], settings_args: dict) -> dict:
    import torch

    from graph.pipeline import Pipeline
    from graph.run import CHUNK

    torch.set_num_threads(os.cpu_count() or 1)
    pipeline = Pipeline(load_settings(**settings_args))
    start = time.perf_counter()
    pipeline.warm_up()
    load = time.perf_counter() - start
    start = time.perf_counter()
    records = [r for i in range(0, len(rows), CHUNK) for r in pipeline.process(rows[i : i + CHUNK])]
    seconds = time.perf_counter() - start
    assert len(records) == len(rows)
    errors = sum(r["status"].startswith("error") for r in records)
    return {"config": "cli", "batch_size": CHUNK, "workers": 1, "load_seconds": round(load, 1),
            "seconds": round(seconds, 2), "errors": errors}


def bench_stream(url: str, rows: list[InputRow], batch: int, workers: int, cli_args: list[str],
                 timeout: float) -> dict:
    keys = Keys(f"bench-b{batch}-w{workers}")
    client = connect(url)
    client.delete(keys.abstracts, keys.results, keys.dead)
    ensure_group(client, keys)
    threads = max(1, (os.cpu_count() or 1) // workers)
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "graph.stream", "--redis-url", url, "--prefix", keys.prefix,
             "work", *cli_args, "--batch-size", str(batch), "--threads", str(threads),
             "--consumer", f"w{i}", "--block", "0.2"],
            cwd=PROJECT_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        for i in range(workers)
    ]
    try:
        start = time.perf_counter()
        while len(client.xinfo_consumers(keys.abstracts, keys.group)) < workers:  # all warmed up
            if any(p.poll() is not None for p in procs):
                raise RuntimeError("a worker exited during start-up")
            if time.perf_counter() - start > timeout:
                raise RuntimeError("workers not ready in time")
            time.sleep(0.1)
        load = time.perf_counter() - start  # includes the interpreter's start-up
        start = time.perf_counter()
        produce(client, keys, rows)
        while client.xlen(keys.results) < len(rows):
            if time.perf_counter() - start > timeout:
                raise RuntimeError("results not complete in time")
            time.sleep(0.05)
        seconds = time.perf_counter() - start
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=30)
    results = cast(list[Entry], client.xrange(keys.results))  # graph.stream: the reply's shape
    records = [json.loads(f["record"]) for _, f in results]
    return {"config": f"stream b{batch} w{workers}", "batch_size": batch, "workers": workers,
            "threads_per_worker": threads, "load_seconds": round(load, 1),
            "seconds": round(seconds, 2),
            "errors": sum(r["status"].startswith("error") for r in records)}


def write_report(result: dict, out_dir: Path, name: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    runs = result["runs"]
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.bar([r["config"] for r in runs], [r["per_core"] for r in runs],
           color=["tab:gray" if r["config"] == "cli" else "tab:blue" for r in runs])
    cli = runs[0]["per_core"]
    ax.axhline(0.8 * cli, color="red", linestyle="--", label="80% of the CLI")
    ax.set(ylabel="abstracts/s per core", title=f"batch throughput, {result['model']}, "
           f"{result['n']} abstracts")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out_dir / f"{name}.png", dpi=120)
    plt.close(fig)
    lines = [
        f"# Serving throughput: {name}",
        "",
        f"Model `{result['model']}`, {result['n']} abstracts per configuration, "
        f"{result['cpus']} CPUs, load average {result['load_before']} before the run. "
        f"Command: `{result['command']}`.",
        "",
        "| configuration | batch size | workers | abstracts/s | per core | vs CLI | load (s) "
        "| errors |",
        "|---|---|---|---|---|---|---|---|",
        *[
            f"| {r['config']} | {r['batch_size']} | {r['workers']} | {r['per_s']} | "
            f"{r['per_core']} | {r['vs_cli']:.0%} | {r['load_seconds']} | {r['errors']} |"
            for r in runs
        ],
        "",
        "Steady state: timed after the models are loaded. Stream timings run from the first "
        "XADD to the last result in the results stream, so they include Redis round trips.",
        "",
        f"![throughput]({name}.png)",
        "",
    ]
    path = out_dir / f"{name}.md"
    path.write_text("\n".join(lines))
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m eval.bench_serving", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--model", help="classifier model (default: the configured one)")
    parser.add_argument("--config", help="YAML merged over configs/default.yaml")
    parser.add_argument("--n", type=int, default=16, help="abstracts per configuration")
    parser.add_argument("--batch-sizes", default="1,8,16", help="worker batch sizes, 1 worker")
    parser.add_argument("--workers", type=int, default=2, help="also run this many workers")
    parser.add_argument("--timeout", type=float, default=600, help="per configuration, seconds")
    parser.add_argument("--out", default=str(REPORT_DIR))
    parser.add_argument("--name", default="throughput")
    args = parser.parse_args(argv)

    settings_args: dict = {"path": args.config}
    cli_args: list[str] = []
    if args.config:
        cli_args += ["--config", str(Path(args.config).resolve())]
    if args.model:
        settings_args["classifier"] = {"model": args.model}
        cli_args += ["--model", args.model]
    model = load_settings(**settings_args).classifier.model
    rows = sample_abstracts(args.n)
    load_before = round(os.getloadavg()[0], 2)
    sizes = [int(b) for b in args.batch_sizes.split(",") if b.strip()]
    configs = [(b, 1) for b in sizes] + ([(max(sizes), args.workers)] if args.workers > 1 else [])
    runs = []
    with local_redis() as url:
        for batch, workers in configs:
            runs.append(bench_stream(url, rows, batch, workers, cli_args, args.timeout))
            print(f"{runs[-1]['config']}: {runs[-1]['seconds']} s", file=sys.stderr)
    # last, so its models never share memory with the workers' copies
    runs.insert(0, bench_cli(rows, settings_args))
    print(f"cli: {runs[0]['seconds']} s", file=sys.stderr)
    cores = os.cpu_count() or 1
    for r in runs:
        r["per_s"] = round(len(rows) / r["seconds"], 3)
        r["per_core"] = round(r["per_s"] / cores, 3)
    for r in runs:
        r["vs_cli"] = round(r["per_core"] / runs[0]["per_core"], 3)
    used = argv if argv is not None else sys.argv[1:]
    result = {"command": " ".join(["python -m eval.bench_serving", *used]), "model": model,
              "n": len(rows), "cpus": cores, "load_before": load_before,
              "load_after": round(os.getloadavg()[0], 2), "runs": runs}
    path = write_report(result, Path(args.out), args.name)
    print(f"report: {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
