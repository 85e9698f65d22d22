"""Inference backends side by side in one run: speed against the bf16 ceiling, test agreement.

    python -m eval.bench_backends --model qwen2.5-1.5b [--backends torch ctranslate2]
                                  [--n 24] [--batch-sizes 1 8 16]

Speed: abstracts/s of each backend's raw scorer on the first n val abstracts, per batch size,
the backends interleaved so that a change of machine load hits them alike, each as a share
of the bf16 compute ceiling measured in the same run (before and after; eval.bench_classifier).
Agreement: each backend's calibrated test predictions (eval.compare's cache, keyed by backend)
against torch's: decision agreement, max / mean |dP|, accuracy, recall and AUC with 95%
bootstrap intervals. The adoption rule (ADOPTION) was written down before any test figure.
Writes reports/classification/backends_<model>.{json,md,png}.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from core import metrics as M
from core.settings import Backend, ConfigError, load_model_config
from eval.bench_classifier import compute_ceiling
from eval.compare import REPORT_DIR, predict
from tools.compute import compute_dtype

MIN_AGREEMENT = 0.995
MAX_AUC_DROP = 0.002
ADOPTION = (
    f"The fastest backend (abstracts/s at the model's configured batch size) becomes the "
    f"default for inference when its calibrated test decisions agree with torch's on at least "
    f"{MIN_AGREEMENT:.1%} of abstracts and its test AUC is at most {MAX_AUC_DROP} below "
    f"torch's; otherwise torch stays. Each backend reads the Platt map fitted on its own val "
    f"scores (`python -m eval.calibrate --backend ...`)."
)


def _timed(scorer, texts: list[str], batch_size: int) -> float:
    scorer.predict_proba(texts[:batch_size], batch_size=batch_size)  # warm-up
    start = time.perf_counter()
    scorer.predict_proba(texts, batch_size=batch_size)
    return time.perf_counter() - start


def speed(model: str, backends: list[Backend], batch_sizes: list[int], n: int) -> dict:
    """abstracts/s per backend and batch size, with the bf16 ceiling measured around them."""
    from finetune.data import load_split
    from tools.classifier.registry import get_classifier

    texts = [e.text for e in load_split("val")[:n]]
    scorers, load_s = {}, {}
    for backend in backends:
        start = time.perf_counter()
        scorers[backend] = get_classifier(model, "finetuned", backend).scorer
        load_s[backend] = round(time.perf_counter() - start, 1)
    anyone = scorers[backends[0]]
    load_before = round(os.getloadavg()[0], 2)
    before = compute_ceiling(anyone, texts, max(batch_sizes))
    rows = []
    for bs in batch_sizes:
        for backend in backends:
            seconds = _timed(scorers[backend], texts, bs)
            rows.append({"backend": backend, "batch_size": bs, "seconds": round(seconds, 2),
                         "abstracts_per_s": round(len(texts) / seconds, 3)})
            print(f"{model} {backend} batch {bs}: {rows[-1]['abstracts_per_s']} abstracts/s",
                  file=sys.stderr)
    after = compute_ceiling(anyone, texts, max(batch_sizes))
    ceiling = (before["abstracts_per_s"] + after["abstracts_per_s"]) / 2
    best = (before["abstracts_per_s_best_float"] + after["abstracts_per_s_best_float"]) / 2
    for row in rows:
        row["share_of_bf16_ceiling"] = round(row["abstracts_per_s"] / ceiling, 3)
        row["share_of_best_float_ceiling"] = round(row["abstracts_per_s"] / best, 3)
    return {"n": len(texts), "load_s": load_s, "load_average_1m": load_before,
            "load_average_1m_after": round(os.getloadavg()[0], 2),
            "ceiling_before": before, "ceiling_after": after,
            "ceiling_abstracts_per_s": round(ceiling, 3),
            "best_float_ceiling_abstracts_per_s": round(best, 4), "rows": rows}


def _with_intervals(y: np.ndarray, p: np.ndarray) -> dict:
    report = M.evaluate(y, p)
    keep = {"accuracy": "accuracy", "recall": "recall_cancer", "auc": "roc_auc"}
    return {k: {"value": report["metrics"][m], "ci95": report["ci95"][m]} for k, m in keep.items()}


def agreement(model: str, backends: list[Backend], out: Path, split: str = "test") -> dict:
    """Each backend's predictions against torch's (from the predictions cache or fresh)."""
    got = {b: predict(model, "finetuned", split, out, refresh=False, backend=b) for b in backends}
    ref = got["torch"]
    table = {}
    for backend, g in got.items():
        dp = np.abs(g["p"] - ref["p"])
        dp_raw = np.abs(g.get("p_raw", g["p"]) - ref.get("p_raw", ref["p"]))
        table[backend] = {
            "n": len(g["y"]),
            "calibration": g["calibration"],
            "decision_agreement": float(np.mean((g["p"] >= M.THRESHOLD)
                                                == (ref["p"] >= M.THRESHOLD))),
            "max_abs_dp": float(dp.max()), "mean_abs_dp": float(dp.mean()),
            "max_abs_dp_raw": float(dp_raw.max()), "mean_abs_dp_raw": float(dp_raw.mean()),
            "abstracts_per_s_200": g["run"].get("abstracts_per_s"),
            **_with_intervals(g["y"], g["p"]),
        }
    return table


def adopt(model: str, speed_rows: list[dict], table: dict, split: str = "test") -> dict:
    """Apply ADOPTION: the fastest backend at the configured batch size, if it agrees on test."""
    bs = load_model_config(model).batch_size
    at_bs = {r["backend"]: r["abstracts_per_s"] for r in speed_rows if r["batch_size"] == bs}
    if not at_bs:
        raise ValueError(f"the configured batch size {bs} was not benchmarked")
    fastest = max(at_bs, key=lambda b: at_bs[b])
    t = table[fastest]
    auc_drop = round(table["torch"]["auc"]["value"] - t["auc"]["value"], 6)  # no float dust
    ok = split == "test" and t["decision_agreement"] >= MIN_AGREEMENT and auc_drop <= MAX_AUC_DROP
    return {"batch_size": bs, "fastest": fastest,
            "speedup_vs_torch": round(at_bs[fastest] / at_bs["torch"], 3),
            "decision_agreement": t["decision_agreement"], "auc_drop": round(auc_drop, 4),
            "split": split, "default": fastest if ok else "torch", "passes": ok}


def _ci(m: dict) -> str:
    return f"{m['value']:.3f} [{m['ci95'][0]:.3f}, {m['ci95'][1]:.3f}]"


def write(report: dict, out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    name = f"backends_{report['model']}"  # not Path.with_suffix: model names hold dots
    json_path, md_path, png_path = (out / f"{name}.{ext}" for ext in ("json", "md", "png"))
    json_path.write_text(json.dumps(report, indent=2) + "\n")
    s = report["speed"]
    sizes = sorted({r["batch_size"] for r in s["rows"]})
    fig, ax = plt.subplots(figsize=(7, 4))
    width = 0.8 / len(report["backends"])
    for k, backend in enumerate(report["backends"]):
        shares = [next(r["share_of_bf16_ceiling"] for r in s["rows"]
                       if r["backend"] == backend and r["batch_size"] == bs) for bs in sizes]
        ax.bar(np.arange(len(sizes)) + k * width, shares, width, label=backend)
    ax.axhline(1.0, color="red", linestyle="--", label="bf16 ceiling")
    ax.set(xticks=np.arange(len(sizes)) + width * (len(report["backends"]) - 1) / 2,
           xticklabels=[f"batch {b}" for b in sizes], ylabel="share of the bf16 ceiling",
           title=f"{report['model']}: inference backends, {s['n']} val abstracts")
    ax.legend()
    fig.tight_layout()
    fig.savefig(png_path, dpi=120)
    plt.close(fig)
    speed_rows = "\n".join(
        f"| {r['backend']} | {r['batch_size']} | {r['seconds']} | {r['abstracts_per_s']} | "
        f"{r['share_of_bf16_ceiling']:.2f} | {r.get('share_of_best_float_ceiling', 0):.2f} |"
        for r in s["rows"])
    agree_rows = "\n".join(
        f"| {b} | {t['decision_agreement']:.1%} | {t['max_abs_dp']:.4f} | {t['mean_abs_dp']:.4f} | "
        f"{t['mean_abs_dp_raw']:.4f} | {_ci(t['accuracy'])} | {_ci(t['recall'])} | "
        f"{_ci(t['auc'])} |"
        for b, t in report["agreement"].items())
    a = report["adoption"]
    verdict = (f"**torch stays** until the rule is applied to test figures: this run compared "
               f"the backends on {a['split']} (on val the calibrated decisions are in-sample for "
               f"each backend's Platt map; the raw |dP| is the clean figure). {a['fastest']} runs "
               f"{a['speedup_vs_torch']}x torch at batch {a['batch_size']}."
               if a["split"] != "test" else
               f"**{a['default']}** is the default: {a['fastest']} runs {a['speedup_vs_torch']}x "
               f"torch at batch {a['batch_size']}, agrees on {a['decision_agreement']:.1%} of "
               f"test decisions and its AUC is {a['auc_drop']:+.4f} below torch's."
               if a["passes"] else
               f"**torch stays**: {a['fastest']} runs {a['speedup_vs_torch']}x torch at batch "
               f"{a['batch_size']} but agrees on {a['decision_agreement']:.1%} of test decisions "
               f"(needs {MIN_AGREEMENT:.1%}) with an AUC drop of {a['auc_drop']:.4f} (at most "
               f"{MAX_AUC_DROP}).")
    c0, c1 = s["ceiling_before"], s["ceiling_after"]
    md_path.write_text(
        f"# Inference backends: {report['model']}\n\n"
        f"Command: `{report['command']}`; {report['when']}; {report['threads']} threads on "
        f"{report['cpu_count']} CPUs; load average {s['load_average_1m']} before the timings, "
        f"{s['load_average_1m_after']} after (a shared machine: compare the ratios, not the "
        f"absolute rates).\n\n"
        f"## Adoption rule (written before the test figures)\n\n{ADOPTION}\n\n{verdict}\n\n"
        "## Speed (val abstracts, raw scores)\n\n"
        f"{s['n']} val abstracts. bf16 ceiling measured in this run: "
        f"{c0['abstracts_per_s']} abstracts/s before the "
        f"timings, {c1['abstracts_per_s']} after ({c0['gemm_gflops_bf16']} / "
        f"{c1['gemm_gflops_bf16']} GFLOP/s bf16 GEMM, {c0['gflop_per_abstract']} GFLOP per "
        f"abstract of {c0['mean_tokens']} tokens); shares use their mean, "
        f"{s['ceiling_abstracts_per_s']}. fp32 GEMM in the same run: "
        f"{c0.get('gemm_gflops_fp32')} / {c1.get('gemm_gflops_fp32')} GFLOP/s; the best float "
        f"ceiling (the better of bf16 and fp32: fp32 where bf16 is emulated, tools.compute) "
        f"is {s.get('best_float_ceiling_abstracts_per_s')} abstracts/s. The torch backend "
        f"computes in {report.get('torch_dtype', 'bfloat16')}. Load time: "
        + ", ".join(f"{b} {t} s" for b, t in s["load_s"].items()) + ".\n\n"
        "| backend | batch | seconds | abstracts/s | share of bf16 ceiling | share of best float "
        "ceiling |\n|---|---|---|---|---|---|\n"
        f"{speed_rows}\n\n![backends](backends_{report['model']}.png)\n\n"
        f"## Agreement with torch on the {next(iter(report['agreement'].values()))['n']} "
        f"{a['split']} "
        "abstracts (calibrated, each backend with its own val-fitted map)\n\n"
        "| backend | decisions agree | max \\|dP\\| | mean \\|dP\\| | mean \\|dP\\| raw | "
        "accuracy | "
        "recall | AUC |\n|---|---|---|---|---|---|---|---|\n"
        f"{agree_rows}\n\nIntervals: 95% bootstrap over the abstracts (core.metrics). The "
        "torch row reads the cached torch predictions of eval.compare (same adapter version and "
        "inputs); the others are scored by their backend and cached beside it.\n"
    )
    return md_path


def main(argv: list[str] | None = None) -> int:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="qwen2.5-1.5b")
    parser.add_argument("--backends", nargs="+", default=["torch", "ctranslate2"])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8, 16])
    parser.add_argument("--n", type=int, default=24, help="val abstracts timed")
    parser.add_argument("--out", type=Path, default=REPORT_DIR)
    parser.add_argument("--split", default="test", choices=["test", "val"],
                        help="agreement split; the adoption rule applies to test only")
    parser.add_argument("--reuse-speed", action="store_true",
                        help="keep the speed section of the last report (it is saved before "
                             "the test split is scored) and redo the agreement only")
    args = parser.parse_args(argv)
    if "torch" not in args.backends:
        args.backends.insert(0, "torch")  # the reference for agreement and the rule
    try:
        model = load_model_config(args.model).name
        report = {"model": model, "backends": args.backends,
                  "command": "python -m eval.bench_backends " + " ".join(argv or sys.argv[1:]),
                  "threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
                  "torch_dtype": str(compute_dtype()).removeprefix("torch."),
                  "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                  "adoption_rule": ADOPTION}
        saved = args.out / f"backends_{model}.json"
        if args.reuse_speed:
            if not saved.exists():
                raise FileNotFoundError(f"--reuse-speed: no {saved} to take the speed from")
            previous = json.loads(saved.read_text())
            report.update({k: previous[k] for k in ("speed", "command", "when")})
        else:
            report["speed"] = speed(args.model, args.backends, args.batch_sizes, args.n)
            args.out.mkdir(parents=True, exist_ok=True)
            saved.write_text(json.dumps(report, indent=2) + "\n")  # scoring the test split is long
        report["agreement"] = agreement(args.model, args.backends, args.out, args.split)
        report["adoption"] = adopt(args.model, report["speed"]["rows"], report["agreement"],
                                   args.split)
    except (ConfigError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {write(report, args.out)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
