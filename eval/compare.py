"""Compare every classifier, zero-shot baseline vs fine-tuned, on a fixed split.

    python -m eval.compare [--models M ...] [--split test] [--refresh]

Writes reports/classification/: comparison.json + comparison.md (metrics with 95% bootstrap
intervals, confusion tables, improvement analysis, training cost, throughput) and PNG
heatmaps. Raw (uncalibrated) predictions are cached per (model, variant, split) as CSV
under predictions/ and reused unless --refresh or the adapter's version changed: the Qwen
models take seconds per abstract on a CPU. A fine-tuned model's val-fitted Platt
calibration (the adapter's calibration.json) is applied at report time, so the report shows
both what the deployed classifier outputs and the raw accuracy.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from core import metrics as M
from core.settings import (
    PROJECT_ROOT,
    Backend,
    ConfigError,
    available_models,
    load_model_config,
)
from tools.classifier.calibration import Calibration

REPORT_DIR = PROJECT_ROOT / "reports" / "classification"
REFERENCE = "keyword-rule"
SINGLE_LABEL = {"tfidf-logreg": "fitted", "keyword-rule": "rule"}


def variants_of(model: str) -> list[str]:
    from tools.classifier.registry import SINGLE_VARIANT_KINDS

    kind = load_model_config(model).kind
    return ["finetuned"] if kind in SINGLE_VARIANT_KINDS else ["baseline", "finetuned"]


def variant_label(model: str, variant: str) -> str:
    return SINGLE_LABEL.get(load_model_config(model).kind, variant)


def _cache_path(out: Path, model: str, variant: str, split: str,
                backend: str | None = None) -> Path:
    """predictions/<model>__<variant>__<split>[__<backend>].csv (no suffix: torch)."""
    engine = "" if backend in (None, "torch") else f"__{backend}"
    return out / "predictions" / f"{load_model_config(model).name}__{variant}__{split}{engine}.csv"


def adapter_version(model: str, variant: str) -> str | None:
    """The version a fresh prediction would carry: cached rows from another adapter are stale."""
    return None if variant == "baseline" else load_model_config(model).adapter_version()


def model_inputs(model: str, texts: list[str]) -> dict:
    """What besides the adapter changes what a model sees (cache key): its clipping settings
    and the preprocessed texts themselves, so a change of preprocessing makes caches stale."""
    cfg = load_model_config(model)
    digest = hashlib.sha256("\x1e".join(texts).encode()).hexdigest()
    return {"max_length": cfg.max_length, "tail_share": cfg.tail_share, "texts_sha256": digest}


def read_cached(path: Path, ids: list[str], version: str | None = None,
                inputs: dict | None = None) -> np.ndarray | None:
    """Cached P(Cancer) in split order, or None when missing, made for other rows, by
    another adapter version or from other inputs (`model_inputs`)."""
    if not path.exists():
        return None
    meta_path = path.with_suffix(".json")
    if meta_path.exists():
        meta = json.loads(meta_path.read_text())
        if meta.get("model_info", {}).get("adapter_version") != version:
            return None
        made_with = {"tail_share": 0.0, **meta.get("inputs", {})}  # older caches: head only
        if inputs and any(made_with.get(k, v) != v for k, v in inputs.items()):
            return None
    with path.open(newline="") as fh:
        rows = {r["abstract_id"]: float(r["p_cancer"]) for r in csv.DictReader(fh)}
    if set(rows) != set(ids):
        return None
    return np.array([rows[i] for i in ids])


def predict(model: str, variant: str, split: str, out: Path, refresh: bool,
            cached_only: bool = False, examples: list | None = None,
            backend: Backend | None = None, prompt: str = "default") -> dict:
    """P(Cancer) for the split, from the cache or by running the model (then cached).

    `examples` (finetune.data.Example-like: abstract_id, text, label) scores another named
    set, e.g. the out-of-domain check or another view of a split; `split` then only names its
    cache file. `backend` overrides a causal LM's configured inference engine; `prompt` the
    prompt variant (a cache file of its own)."""
    from finetune.data import load_split
    from tools.classifier.registry import get_classifier, resolve_backend

    examples = load_split(split) if examples is None else examples
    ids = [e.abstract_id for e in examples]
    y = np.array([e.label for e in examples])
    backend = resolve_backend(load_model_config(model), backend)
    path = _cache_path(out, model, variant, split if prompt == "default" else f"{split}__{prompt}",
                       backend)
    meta_path = path.with_suffix(".json")
    inputs = model_inputs(model, [e.text for e in examples])
    p = None if refresh else read_cached(path, ids, adapter_version(model, variant), inputs)
    if p is None and cached_only:
        raise FileNotFoundError(
            f"no cached predictions of the current adapter at {path.relative_to(out)}")
    if p is None:
        t0 = time.time()
        clf = get_classifier(model, variant, backend)
        t1 = time.time()
        p = np.round(clf.predict_proba([e.text for e in examples], prompt, calibrated=False), 6)
        seconds = time.time() - t1
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["abstract_id", "label", "p_cancer"])
            for i, e in enumerate(examples):
                w.writerow([e.abstract_id, "Cancer" if e.label else "Non-Cancer", f"{p[i]:.6f}"])
        import torch

        meta = {
            "model_info": clf.info.model_dump(), "inputs": inputs, "n": len(ids),
            "load_s": round(t1 - t0, 2),
            "predict_s": round(seconds, 2),
            "abstracts_per_s": round(len(ids) / max(seconds, 1e-9), 2),
            "threads": torch.get_num_threads(), "nice": os.nice(0),
            "load_average_1m": round(os.getloadavg()[0], 2),
            "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        }
        meta_path.write_text(json.dumps(meta, indent=2) + "\n")
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    got = {"y": y, "p": p, "run": meta, "calibration": None}
    calibration = Calibration.load(load_model_config(model).adapter_path(), backend or "torch")
    if variant == "finetuned" and calibration is not None:
        got.update(p_raw=p, p=calibration.apply(p), calibration=asdict(calibration))
    return got


def _read_json(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.exists() else None


def training_cost(model: str) -> dict | None:
    adapter = load_model_config(model).adapter_path()
    info = _read_json(adapter / "training.json") if adapter else None
    if not info:
        return None
    keys = ("version", "steps", "stopped", "wall_time_s", "peak_rss_gib", "threads",
            "trainable_params", "train_examples", "best_val_loss", "C")
    cost = {k: info[k] for k in keys if k in info}
    init = info.get("init_adapter")
    if init and init.get("wall_time_s") is not None:  # a further pass: its cost includes the first
        cost["steps_per_pass"] = [init["steps"], info["steps"]]
        cost["wall_time_s"] = round(init["wall_time_s"] + info["wall_time_s"], 1)
        cost["peak_rss_gib"] = max(info["peak_rss_gib"], init.get("peak_rss_gib") or 0)
    return cost


def improvement(y: np.ndarray, base: dict, tuned: dict, n_boot: int) -> dict:
    """What fine-tuning changed: accuracy (paired CI), errors removed, confidence shift."""
    cb, ct = M.confusion(y, base["p"]), M.confusion(y, tuned["p"])
    return {
        "accuracy_change": M.paired_difference(y, tuned["p"], base["p"], n_boot=n_boot),
        "false_negatives_removed": cb["fn"] - ct["fn"],
        "false_positives_removed": cb["fp"] - ct["fp"],
        "mean_p_true_before": M.point_metrics(y, base["p"])["mean_p_true"],
        "mean_p_true_after": M.point_metrics(y, tuned["p"])["mean_p_true"],
    }


def run(models: list[str], split: str, out: Path, refresh: bool, n_boot: int,
        cached_only: bool = False) -> dict:
    from tools.weights import WeightsError

    out.mkdir(parents=True, exist_ok=True)
    models = list(dict.fromkeys([REFERENCE, *models]))  # the reference is always reported
    report: dict = {"split": split, "threshold": M.THRESHOLD,
                    "bootstrap": {"n": n_boot, "seed": M.SEED}, "models": {}}
    preds: dict[tuple[str, str], dict] = {}
    for model in models:
        name = load_model_config(model).name
        entry: dict = {"kind": load_model_config(model).kind, "variants": {}, "skipped": {}}
        for variant in variants_of(model):
            try:
                got = predict(model, variant, split, out, refresh, cached_only)
            except (FileNotFoundError, WeightsError) as exc:
                entry["skipped"][variant] = str(exc)
                print(f"skip {name}/{variant}: {exc}", file=sys.stderr)
                continue
            preds[(name, variant)] = got
            result = M.evaluate(got["y"], got["p"], n_boot=n_boot)
            result["run"] = got["run"]
            result["label"] = variant_label(model, variant)
            if got["calibration"]:
                result["calibration"] = got["calibration"]
                result["raw_metrics"] = M.point_metrics(got["y"], got["p_raw"])
            entry["variants"][variant] = result
            M.plot_confusion(result["confusion"], f"{name} ({result['label']}, {split})",
                             out / f"confusion_{name}_{variant}.png")
            acc = result["metrics"]["accuracy"]
            print(f"{name}/{variant}: accuracy {acc:.3f}", file=sys.stderr)
        if ("baseline" in entry["variants"]) and ("finetuned" in entry["variants"]):
            y = preds[(name, "finetuned")]["y"]
            entry["improvement"] = improvement(
                y, preds[(name, "baseline")], preds[(name, "finetuned")], n_boot)
        ref = preds.get((REFERENCE, "finetuned"))
        if name != REFERENCE and ref is not None and (name, "finetuned") in preds:
            entry["vs_keyword_rule"] = M.paired_difference(
                ref["y"], preds[(name, "finetuned")]["p"], ref["p"], n_boot=n_boot)
        entry["training"] = training_cost(model)
        entry["throughput"] = _read_json(out / f"throughput_{name}.json")
        report["models"][name] = entry
    (out / "comparison.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "comparison.md").write_text(render_markdown(report))
    plot_accuracy(report, out / "accuracy.png")
    return report


def _fmt(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _ci(value: float, ci: list[float]) -> str:
    return f"{value:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]"


def _verdict(diff: dict, what: str) -> str:
    lo, hi = diff["ci95"]
    d = f"{diff['difference']:+.3f} (95% CI [{lo:+.3f}, {hi:+.3f}])"
    if lo > 0:
        return f"beats {what}: accuracy {d}"
    if hi < 0:
        return f"is worse than {what}: accuracy {d}"
    return f"does not beat {what} with confidence: accuracy {d}, the interval includes 0"


def render_markdown(report: dict) -> str:
    split = report["split"]
    lines = [
        f"# Classifier comparison ({split} split)",
        "",
        f"Generated by `python -m eval.compare`. Threshold P(Cancer) >= {report['threshold']}; "
        f"95% intervals from {report['bootstrap']['n']} seeded bootstrap resamples "
        f"(seed {report['bootstrap']['seed']}). Cancer is the positive class.",
        "",
        "| model | variant | n | accuracy [95% CI] | Cancer recall [95% CI] | Cancer precision | "
        "macro F1 [95% CI] | ROC-AUC | ECE |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, entry in report["models"].items():
        for r in entry["variants"].values():
            m, ci = r["metrics"], r["ci95"]
            lines.append(
                f"| {name} | {r['label']} | {r['n']} | {_ci(m['accuracy'], ci['accuracy'])} | "
                f"{_ci(m['recall_cancer'], ci['recall_cancer'])} | {m['precision_cancer']:.3f} | "
                f"{_ci(m['f1_macro'], ci['f1_macro'])} | {m['roc_auc']:.4f} | {m['ece']:.3f} |"
            )
    lines += ["", "## Verdicts", ""]
    for name, entry in report["models"].items():
        if "improvement" in entry:
            verdict = _verdict(entry["improvement"]["accuracy_change"], "its zero-shot baseline")
            lines.append(f"- **{name}** fine-tuned {verdict}.")
        if "vs_keyword_rule" in entry:
            label = entry["variants"]["finetuned"]["label"]
            verdict = _verdict(entry["vs_keyword_rule"], "the keyword rule")
            lines.append(f"- **{name}** ({label}) {verdict}.")
        tuned = entry["variants"].get("finetuned", {})
        if cal := tuned.get("calibration"):
            raw, m = tuned["raw_metrics"], tuned["metrics"]
            lines.append(
                f"- **{name}** fine-tuned is Platt-calibrated on val (n={cal['n']}): accuracy "
                f"{raw['accuracy']:.3f} -> {m['accuracy']:.3f}, Cancer recall "
                f"{raw['recall_cancer']:.3f} -> {m['recall_cancer']:.3f}, ECE "
                f"{raw['ece']:.3f} -> {m['ece']:.3f} (raw -> calibrated).")
        for variant, why in entry["skipped"].items():
            lines.append(f"- **{name}** {variant}: not evaluated ({why.splitlines()[0]}).")
    lines += ["", "## Cost", "",
              "| model | training wall time (min) | training peak RSS (GiB) | training steps | "
              "best abstracts/s (batch, threads, load average) | compute ceiling (abstracts/s) |",
              "|---|---|---|---|---|---|"]
    for name, entry in report["models"].items():
        tr, tp = entry.get("training") or {}, entry.get("throughput")
        speed, ceiling = "not measured", "-"
        if tp:
            best = max(tp["results"], key=lambda r: r["abstracts_per_s"])
            rate = best["abstracts_per_s"]
            speed = (f"{rate:.2f}" if rate < 10 else f"{rate:.1f}") + (
                f" ({best['batch_size']}, {tp['threads']}, {tp['load_average_1m']})")
            if c := tp.get("ceiling"):
                ceiling = f"{c['abstracts_per_s']:.2f}"
        wall = f"{tr['wall_time_s'] / 60:.1f}" if "wall_time_s" in tr else "-"
        steps = (" + ".join(map(str, tr["steps_per_pass"])) if "steps_per_pass" in tr
                 else tr.get("steps", "-"))
        lines.append(f"| {name} | {wall} | {tr.get('peak_rss_gib', '-')} | {steps} | {speed} | "
                     f"{ceiling} |")
    for name, entry in report["models"].items():
        lines += ["", f"## {name} ({entry['kind']})", ""]
        for variant, r in entry["variants"].items():
            m = r["metrics"]
            lines += [
                f"### {r['label']}", "",
                M.confusion_markdown(r["confusion"]),
                f"Per class: Cancer P/R/F1 {m['precision_cancer']:.3f}/{m['recall_cancer']:.3f}/"
                f"{m['f1_cancer']:.3f}; Non-Cancer P/R/F1 {m['precision_non_cancer']:.3f}/"
                f"{m['recall_non_cancer']:.3f}/{m['f1_non_cancer']:.3f}; macro P/R/F1 "
                f"{m['precision_macro']:.3f}/{m['recall_macro']:.3f}/{m['f1_macro']:.3f}; "
                f"ROC-AUC {_ci(m['roc_auc'], r['ci95']['roc_auc'])}; "
                f"ECE {_ci(m['ece'], r['ci95']['ece'])}. "
                f"Heatmap: `confusion_{name}_{variant}.png`.",
                "",
            ]
            if cal := r.get("calibration"):
                raw = r["raw_metrics"]
                lines += [f"Platt-calibrated on the {cal['fitted_on']} split (n={cal['n']}, slope "
                          f"{cal['slope']:.3f}, intercept {cal['intercept']:.3f}; "
                          f"`calibration.json` in the adapter); before calibration: accuracy "
                          f"{raw['accuracy']:.3f}, Cancer recall {raw['recall_cancer']:.3f}, "
                          f"ECE {raw['ece']:.3f}.", ""]
            run_meta = r.get("run") or {}
            if run_meta.get("predict_s") is not None:
                rm = run_meta
                lines += [f"Prediction run: {rm['n']} abstracts in {rm['predict_s']} s "
                          f"({rm['abstracts_per_s']} abstracts/s, {rm['threads']} threads, "
                          f"nice {rm.get('nice', 0)}, "
                          f"load average {rm['load_average_1m']}, {rm['when']}).", ""]
        if imp := entry.get("improvement"):
            acc = imp["accuracy_change"]
            lines += [
                "### Improvement from fine-tuning", "",
                "| accuracy change [95% CI] | false negatives removed | false positives removed | "
                "mean P(true class) before -> after |",
                "|---|---|---|---|",
                f"| {acc['difference']:+.3f} [{acc['ci95'][0]:+.3f}, {acc['ci95'][1]:+.3f}] | "
                f"{imp['false_negatives_removed']} | {imp['false_positives_removed']} | "
                f"{imp['mean_p_true_before']:.3f} -> {imp['mean_p_true_after']:.3f} |", "",
            ]
        if tr := entry.get("training"):
            lines += ["### Training cost", "", "| " + " | ".join(tr) + " |",
                      "|" + "---|" * len(tr),
                      "| " + " | ".join(_fmt(v) for v in tr.values()) + " |", "",
                      f"From `adapters/{name}/training.json`.", ""]
        if tp := entry.get("throughput"):
            best = max(tp["results"], key=lambda r: r["abstracts_per_s"])
            lines += ["### Throughput", "",
                      f"Best {best['abstracts_per_s']:.2f} abstracts/s at batch "
                      f"{best['batch_size']}, "
                      f"{tp['threads']} threads, {tp['variant']} variant, {tp['n']} val abstracts, "
                      f"load average before {tp['load_average_1m']} "
                      f"(`throughput_{name}.json`).", ""]
            if c := tp.get("ceiling"):
                lines += [f"Compute ceiling on this machine: {c['abstracts_per_s']:.2f} "
                          f"abstracts/s ({c['gflop_per_abstract']} GFLOP per abstract in the "
                          f"decoder's linear layers at {c['gemm_gflops_bf16']} GFLOP/s, the "
                          f"measured bf16 matrix rate).", ""]
    return "\n".join(lines) + "\n"


def plot_accuracy(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [(f"{n}\n{r['label']}", r["metrics"]["accuracy"], r["ci95"]["accuracy"])
            for n, e in report["models"].items() for r in e["variants"].values()]
    if not rows:
        return
    fig, ax = plt.subplots(figsize=(max(4, 1.2 * len(rows)), 3.6), dpi=120)
    x = np.arange(len(rows))
    acc = np.array([r[1] for r in rows])
    err = np.array([[a - r[2][0], r[2][1] - a] for a, r in zip(acc, rows, strict=True)]).T
    ax.bar(x, acc, yerr=err, capsize=4, color="#4c72b0")
    ax.set_xticks(x, [r[0] for r in rows], fontsize=7)
    ax.set_ylim(max(0.0, acc.min() - 0.15), 1.0)
    ax.set_ylabel(f"accuracy ({report['split']}, 95% CI)")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=None,
                        help=f"default: all ({', '.join(available_models())})")
    parser.add_argument("--split", default="test", choices=["train", "val", "test"])
    parser.add_argument("--refresh", action="store_true", help="ignore cached predictions")
    parser.add_argument("--cached-only", action="store_true",
                        help="report only cached predictions; never load a model")
    parser.add_argument("--n-boot", type=int, default=M.N_BOOT)
    parser.add_argument("--out", type=Path, default=REPORT_DIR)
    args = parser.parse_args(argv)
    try:
        for model in args.models or []:
            load_model_config(model)
        report = run(args.models or available_models(), args.split, args.out, args.refresh,
                     args.n_boot, args.cached_only and not args.refresh)
    except (ConfigError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {args.out / 'comparison.md'} ({len(report['models'])} models)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
