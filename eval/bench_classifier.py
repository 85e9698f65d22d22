"""Batched inference throughput of one classifier on the first 64 val abstracts.

    python -m eval.bench_classifier --model minilm [--variant finetuned] [--batch-sizes 1 8 32]

Writes reports/classification/throughput_<model>.json and .md. Load average is recorded
before each measurement: a number taken while another heavy job runs is not comparable.
For a causal LM it also writes the compute ceiling: this machine's measured bf16 matrix
rate over the matrix work one abstract needs, the most any scheduling could reach here.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import sys
import time
from pathlib import Path

import torch

from core.settings import ConfigError, load_model_config
from eval.compare import REPORT_DIR


def gemm_gflops(rows: int, hidden: int, intermediate: int, repeats: int = 5,
                dtype: torch.dtype = torch.bfloat16) -> float:
    """Matrix-multiply rate of this machine at the model's own MLP shape, in `dtype`."""
    x = torch.randn(rows, hidden, dtype=dtype)
    w = torch.randn(intermediate, hidden, dtype=dtype)
    torch.nn.functional.linear(x, w)  # warm-up: oneDNN picks its kernel on the first call
    start = time.perf_counter()
    for _ in range(repeats):
        torch.nn.functional.linear(x, w)
    return 2 * rows * hidden * intermediate * repeats / (time.perf_counter() - start) / 1e9


def decoder_linear_weights(cfg) -> int:
    """Weights in a Qwen2/Llama-style decoder's linear layers, from its Hugging Face config."""
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    kv = cfg.num_key_value_heads * head_dim
    attention = 2 * cfg.hidden_size * cfg.num_attention_heads * head_dim + 2 * cfg.hidden_size * kv
    return cfg.num_hidden_layers * (attention + 3 * cfg.hidden_size * cfg.intermediate_size)


def compute_ceiling(scorer, texts: list[str], batch_size: int) -> dict:
    """Abstracts/s if every decoder matrix multiply ran at the measured bf16 GEMM rate (the
    issue's ceiling), and at the better of the bf16 and fp32 rates (on a CPU without native
    bf16, fp32 is the fast torch path: tools.compute).

    Counts the decoder's linear layers only (2 flops per weight per token): attention
    scores, norms and activations come on top, so the real rate stays below this. Any
    label-word scorer (torch or the int8 engine) serves: the count comes from the config.
    """
    from transformers import AutoConfig

    from tools.classifier.label_words import resolve_base_path

    cfg = AutoConfig.from_pretrained(resolve_base_path(scorer.cfg))
    weights = decoder_linear_weights(cfg)
    tokens = float(scorer.encoder.encode(texts)["attention_mask"].sum(dim=1).float().mean())
    gflop_per_abstract = 2 * weights * tokens / 1e9
    shape = (batch_size * int(tokens), cfg.hidden_size, cfg.intermediate_size)
    rate = gemm_gflops(*shape)
    fp32 = gemm_gflops(*shape, dtype=torch.float32)
    return {"decoder_linear_weights": weights, "mean_tokens": round(tokens, 1),
            "gflop_per_abstract": float(f"{gflop_per_abstract:.4g}"),
            "gemm_gflops_bf16": float(f"{rate:.4g}"), "gemm_gflops_fp32": float(f"{fp32:.4g}"),
            "abstracts_per_s": float(f"{rate / gflop_per_abstract:.4g}"),  # slow CPUs: < 0.01
            "abstracts_per_s_best_float": float(f"{max(rate, fp32) / gflop_per_abstract:.4g}")}


def bench(model: str, variant: str, batch_sizes: list[int], n: int, repeats: int) -> dict:
    from finetune.data import load_split
    from tools.classifier.registry import get_classifier

    texts = [e.text for e in load_split("val")[:n]]
    t0 = time.time()
    clf = get_classifier(model, variant)
    load_s = time.time() - t0
    scorer = clf.scorer  # the model itself: its own batching, no calibration
    batched = "batch_size" in inspect.signature(scorer.predict_proba).parameters
    load_avg = round(os.getloadavg()[0], 2)
    results = []
    for bs in batch_sizes if batched else [len(texts)]:
        kwargs = {"batch_size": bs} if batched else {}
        scorer.predict_proba(texts[: min(bs, len(texts))], **kwargs)  # warm-up
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            scorer.predict_proba(texts, **kwargs)
            best = min(best, time.perf_counter() - start)
        results.append({"batch_size": bs, "seconds": round(best, 3),
                        "abstracts_per_s": round(len(texts) / best, 2)})
        print(f"{model}/{variant} batch {bs}: {len(texts) / best:.2f} abstracts/s", file=sys.stderr)
    ceiling = None
    if hasattr(scorer, "label_ids"):  # a label-word scorer, whatever its engine
        ceiling = compute_ceiling(scorer, texts, max(batch_sizes))
    return {
        "model": load_model_config(model).name, "variant": variant, "n": len(texts),
        "threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
        "load_average_1m": load_avg, "load_s": round(load_s, 2), "repeats": repeats,
        "results": results, "ceiling": ceiling,
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


def write(report: dict, out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"throughput_{report['model']}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    rows = "\n".join(f"| {r['batch_size']} | {r['seconds']} | {r['abstracts_per_s']} |"
                     for r in report["results"])
    ceiling = ""
    if c := report.get("ceiling"):
        ceiling = (
            f"\nCompute ceiling on this machine: **{c['abstracts_per_s']} abstracts/s**. A bf16 "
            f"matrix multiply at the model's MLP shape runs at {c['gemm_gflops_bf16']} GFLOP/s "
            f"here, and one abstract ({c['mean_tokens']} tokens on average, prompt included) "
            f"needs {c['gflop_per_abstract']} GFLOP in the decoder's linear layers alone "
            f"({c['decoder_linear_weights']:,} weights x 2 flops per token).\n"
        )
    path.with_suffix(".md").write_text(
        f"# Throughput: {report['model']} ({report['variant']})\n\n"
        f"{report['n']} val abstracts, {report['threads']} torch threads on "
        f"{report['cpu_count']} CPUs, load average {report['load_average_1m']} before the run, "
        f"best of {report['repeats']}; model load {report['load_s']} s; {report['when']}.\n\n"
        f"| batch size | seconds | abstracts/s |\n|---|---|---|\n{rows}\n{ceiling}"
    )
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--variant", default="finetuned", choices=["finetuned", "baseline"])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    parser.add_argument("--n", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--out", type=Path, default=REPORT_DIR)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        load_model_config(args.model)
        report = bench(args.model, args.variant, args.batch_sizes, args.n, args.repeats)
    except (ConfigError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {write(report, args.out)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
