"""The whole graph's throughput as a share of the bf16 ceiling, per classifier backend, one run.

    python -m eval.bench_graph [--n 24] [--backends ctranslate2 torch] [--config FILE]

Runs what `python -m graph.run` runs (the Pipeline with a SQLite checkpointer, in chunks of
graph.run.CHUNK, the configured verifier and disease routes) on the first n test abstracts,
after `warm_up` has loaded every model, so load time is left out. Around each backend's run
it measures the bf16 compute ceiling of the configured classifier on the same abstracts
(eval.bench_classifier: the bf16 GEMM rate over the decoder's matrix work per abstract),
and reports the graph's abstracts/s over it. The issue's target: at least 1.2x. On a CPU
without native bf16 (tools.compute), bf16 is emulated and fp32 is torch's fast path, so the
report also gives the ratio over the better of the two ceilings, the meaningful one there.
Writes reports/classification/graph_ceiling.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import yaml

from core.settings import ConfigError, load_model_config, load_settings
from eval.bench_classifier import compute_ceiling
from eval.compare import REPORT_DIR

TARGET = 1.2


def _model_yaml(model: str, backend: str, folder: Path) -> str:
    """The configured model with another backend, as a YAML the registry loads by path."""
    cfg = load_model_config(model)
    if cfg.backend == backend:
        return model
    data = cfg.model_dump()
    data.update(backend=backend, adapter=str(cfg.adapter_path()) if cfg.adapter else None)
    path = folder / f"{cfg.name}.{backend}.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def run_backend(settings_path: str | None, backend: str, n: int, folder: Path) -> dict:
    from langgraph.checkpoint.sqlite import SqliteSaver

    from finetune.data import load_corpus, read_split, to_example
    from graph.pipeline import Pipeline
    from graph.run import CHUNK
    from tools.classifier.registry import get_classifier

    base = load_settings(settings_path)
    model = _model_yaml(base.classifier.model, backend, folder)
    settings = load_settings(settings_path, classifier={"model": model})
    by_id = {r.abstract_id: r for r in load_corpus(settings)}
    rows = [by_id[i] for i in read_split("test")[:n]]
    with SqliteSaver.from_conn_string(str(folder / f"{backend}.sqlite")) as checkpointer:
        pipeline = Pipeline(settings, checkpointer)
        start = time.perf_counter()
        pipeline.warm_up()
        load_s = time.perf_counter() - start
        scorer = get_classifier(model).scorer
        texts = [to_example(r).text for r in rows]
        batch = load_model_config(model).batch_size
        before = compute_ceiling(scorer, texts, batch)
        load_avg = round(os.getloadavg()[0], 2)
        start = time.perf_counter()
        records = [rec for i in range(0, len(rows), CHUNK)
                   for rec in pipeline.process(rows[i : i + CHUNK], run_id=f"bench-{backend}")]
        seconds = time.perf_counter() - start
        after = compute_ceiling(scorer, texts, batch)
    ceiling = (before["abstracts_per_s"] + after["abstracts_per_s"]) / 2
    best = (before["abstracts_per_s_best_float"] + after["abstracts_per_s_best_float"]) / 2
    rate = len(rows) / seconds
    print(f"graph {backend}: {rate:.3f} abstracts/s, {rate / ceiling:.2f}x the bf16 ceiling, "
          f"{rate / best:.2f}x the best float ceiling", file=sys.stderr)
    return {"backend": backend, "n": len(rows), "load_s": round(load_s, 1),
            "seconds": round(seconds, 1), "abstracts_per_s": round(rate, 3),
            "errors": sum(r["status"].startswith("error") for r in records),
            "requeried": sum((r.get("verifier") or {}).get("attempts", 1) > 1 for r in records),
            "load_average_1m": load_avg, "ceiling_before": before, "ceiling_after": after,
            "ceiling_abstracts_per_s": round(ceiling, 3),
            "share_of_bf16_ceiling": round(rate / ceiling, 3),
            "best_float_ceiling_abstracts_per_s": round(best, 4),
            "share_of_best_float_ceiling": round(rate / best, 3)}


def write(report: dict, out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    (out / "graph_ceiling.json").write_text(json.dumps(report, indent=2) + "\n")
    rows = "\n".join(
        f"| {r['backend']} | {r['n']} | {r['seconds']} | {r['abstracts_per_s']} | "
        f"{r['ceiling_abstracts_per_s']} | **{r['share_of_bf16_ceiling']:.2f}x** | "
        f"{r['best_float_ceiling_abstracts_per_s']} | **{r['share_of_best_float_ceiling']:.2f}x** "
        f"| {r['load_s']} | {r['load_average_1m']} | {r['errors']} |" for r in report["runs"])
    gemm = report["runs"][0]["ceiling_before"]
    path = out / "graph_ceiling.md"
    path.write_text(
        f"# The whole graph against the compute ceiling\n\n"
        f"Command: `{report['command']}`; {report['when']}; {report['cpu_count']} CPUs, "
        f"{report['threads']} torch threads. The pipeline `python -m graph.run` runs (SQLite "
        f"checkpointer, chunks of {report['chunk']}), default config except the classifier's "
        f"backend, on the first test abstracts, timed after every model loaded. The ceiling: "
        f"the bf16 GEMM rate measured just before and after each run over the decoder's matrix "
        f"work per abstract (eval.bench_classifier), their mean. Target: at least {TARGET}x.\n\n"
        f"This CPU computes bf16 natively: **{report['native_bf16']}**. Measured GEMM before "
        f"the first run: bf16 {gemm['gemm_gflops_bf16']} GFLOP/s, fp32 "
        f"{gemm['gemm_gflops_fp32']} GFLOP/s. Where bf16 is emulated, the bf16 ceiling is far "
        "below what torch reaches in fp32, so the second ratio (over the better of the two "
        "ceilings) is the one that says whether int8 beat torch's best float path.\n\n"
        "| classifier backend | abstracts | seconds | graph abstracts/s | bf16 ceiling abstracts/s "
        "| graph / bf16 ceiling | best float ceiling abstracts/s | graph / best float ceiling "
        "| load (s) | load average | errors |\n"
        f"|---|---|---|---|---|---|---|---|---|---|---|\n{rows}\n\n"
        "A shared machine: the load average says how busy it was; compare the ratios.\n")
    return path


def main(argv: list[str] | None = None) -> int:
    import torch

    from graph.run import CHUNK
    from tools.compute import native_bf16

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=24, help="test abstracts per backend")
    parser.add_argument("--backends", nargs="+", default=None,
                        help="classifier backends (default: the configured one)")
    parser.add_argument("--config", help="YAML merged over configs/default.yaml")
    parser.add_argument("--out", type=Path, default=REPORT_DIR)
    args = parser.parse_args(argv)
    try:
        backends = args.backends or [
            load_model_config(load_settings(args.config).classifier.model).backend]
        with tempfile.TemporaryDirectory() as folder:
            runs = [run_backend(args.config, b, args.n, Path(folder)) for b in backends]
    except (ConfigError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    report = {"command": "python -m eval.bench_graph " + " ".join(argv or sys.argv[1:]),
              "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "cpu_count": os.cpu_count(), "threads": torch.get_num_threads(), "chunk": CHUNK,
              "target": TARGET, "native_bf16": native_bf16(), "runs": runs}
    print(f"wrote {write(report, args.out)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
