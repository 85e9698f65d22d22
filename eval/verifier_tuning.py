"""Choose the verifier's threshold and re-query rung under the fused decision, on val.

    python -m eval.verifier_tuning [--config FILE] [--repeats 20] [--write-config]

The graph labels with the fused decision (docs/decision.md): the verifier re-queries when
the `first` stage's fused P(Cancer) lies within logit(`verifier.confidence_threshold`) of
the operating point or contradicts the diseases found, and `decide` then scores with the
`full` stage, which reads the re-query's logit. So a (threshold, rung) setting is judged by
that policy: for every candidate re-query call (`candidate_calls`) the fused decision is
fitted exactly as `make decision-fit` fits it (eval.decision_fit: its variants, C grid,
repeated stratified 5-fold CV on val, out-of-fold), and for every threshold of the grid its
adoption rule picks the variant and C whose held-out folds, replaying the trigger and the
operating point, give the lowest log-loss. The ladder has one rung: the decision has one
re-query feature, so a second rung would cost a call that no fitted stage reads.

Selection rule (written down before any figure of this grid was seen; test is never read):
1. each setting's score is the repeated-CV log-loss of the decision its fit adopts;
2. L* is the lowest; a setting ties with it when its log-loss is <= L* + SE*, SE* the
   standard error of the best setting's log-loss over the CV repeats (one-standard-error rule);
3. among the ties: the fewest classifier calls per abstract, then the current setting
   (configs/default.yaml), then the lowest log-loss.
Writes reports/verifier/tuning.{json,md,png}; with --write-config puts the choice into
configs/default.yaml when it differs from it (then `make decision-fit` must refit).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from core.settings import PROJECT_ROOT, ConfigError, Settings, load_settings
from eval.decision_data import FIRST_PROMPT, FIRST_VIEW, Rows, load_rows, requery_call
from eval.decision_fit import C_GRID, VARIANTS, candidate_fits, cross_fit_evidence, select

REPORT_DIR = PROJECT_ROOT / "reports" / "verifier"
CONFIG = PROJECT_ROOT / "configs" / "default.yaml"
THRESHOLDS = (0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.99)
OTHER_MODELS = ("tfidf-logreg", "minilm", "keyword-rule")
Call = tuple[str, str, str]  # (model, view, prompt), as agents.classifier names a call


def candidate_calls(model: str) -> list[Call]:
    """The first call, then the rungs a ladder may use: the same model on another view or
    prompt (each costs a pass over the split: ~5 min for the 1.5B on val), other models."""
    rungs = (("title_and_abstract", "default"), ("abstract_first", "default"),
             ("head_and_tail", "default"), ("abstract_first", "definition"))
    own = [(model, view, prompt) for view, prompt in rungs]
    return own + [(m, FIRST_VIEW, FIRST_PROMPT) for m in OTHER_MODELS if m != model]


def log_loss_se(p: np.ndarray, y: np.ndarray, repeats: int) -> float:
    """Standard error of the CV log-loss over the repeats (each repeat scores every row once)."""
    from sklearn.metrics import log_loss

    per_repeat = [log_loss(yr, np.clip(pr, 1e-6, 1 - 1e-6), labels=[0, 1])
                  for pr, yr in zip(np.split(p, repeats), np.split(y, repeats), strict=True)]
    return float(np.std(per_repeat, ddof=1) / np.sqrt(repeats)) if repeats > 1 else 0.0


def setting_scores(rows: Rows, fits: list[dict], threshold: float, target: float,
                   repeats: int) -> dict:
    """One (rung, threshold): what the decision fit adopts there, scored on held-out folds."""
    chosen = select(rows, fits, target, threshold)
    a = chosen["adopted"]
    return {
        "threshold": threshold, "rung": list(rows.requery_call),
        "variant": a["variant"], "C": a["C"], "log_loss": a["log_loss"],
        "log_loss_se": round(log_loss_se(a["_cv"]["p"], a["_cv"]["y"], repeats), 5),
        "accuracy": a["accuracy"], "recall_cancer": a["recall_cancer"],
        "precision_cancer": a["precision_cancer"], "ece": a["ece"],
        "operating_point": a["threshold"], "requery_rate": a["requery_rate"],
        "mean_calls": round(1 + a["requery_rate"], 4),
    }


def choose(results: list[dict], current: dict) -> dict:
    """The selection rule of the module docstring."""
    best = min(results, key=lambda r: r["log_loss"])
    ties = [r for r in results if r["log_loss"] <= best["log_loss"] + best["log_loss_se"]]
    return min(ties, key=lambda r: (r["mean_calls"], not is_setting(r, current), r["log_loss"]))


def is_setting(result: dict, setting: dict) -> bool:
    return (result["threshold"] == setting["threshold"]
            and list(result["rung"]) == list(setting["rung"]))


def tune(settings: Settings, repeats: int, variants: tuple[str, ...] = VARIANTS) -> dict:
    model, target = settings.classifier.model, settings.decision.target_recall
    configured = requery_call(settings)
    current = {"threshold": settings.verifier.confidence_threshold, "rung": list(configured)}
    rungs = list(dict.fromkeys([*candidate_calls(model)[1:], configured]))
    evidence = None
    results, calls = [], {}
    for rung in rungs:
        t0 = time.perf_counter()
        rows = load_rows("val", settings, call=rung)
        if evidence is None and "cross-fit" in variants:
            train = load_rows("train", settings, scores=False, call=rung)
            evidence = cross_fit_evidence(train, rows)
        calls[" / ".join(rung)] = round(float(((rows.requery >= 0.5) == rows.y).mean()), 4)
        with threadpool_limits(1):  # thousands of tiny fits: BLAS threads only contend
            fits = candidate_fits(rows, variants, repeats, evidence)
            for threshold in THRESHOLDS:
                results.append(setting_scores(rows, fits, threshold, target, repeats))
        print(f"{' / '.join(rung)}: {time.perf_counter() - t0:.0f} s", file=sys.stderr,
              flush=True)
    first = (model, FIRST_VIEW, FIRST_PROMPT)
    calls = {" / ".join(first): round(float(((rows.first >= 0.5) == rows.y).mean()), 4), **calls}
    now = next((r for r in results if is_setting(r, current)), None)
    if now is None:  # a configured threshold outside the grid: score it too
        rows = load_rows("val", settings, call=configured)
        with threadpool_limits(1):
            fits = candidate_fits(rows, variants, repeats, evidence)
            now = setting_scores(rows, fits, settings.verifier.confidence_threshold, target,
                                 repeats)
        results.append(now)
    chosen = choose(results, current)
    best = min(results, key=lambda r: r["log_loss"])
    return {
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "model": model, "split": "val", "n": len(rows.y), "repeats": repeats,
        "variants": list(dict.fromkeys(("first-call", *variants))), "c_grid": list(C_GRID),
        "target_recall": target, "calls": calls, "current": now, "lowest_log_loss": best,
        "tie_band": round(best["log_loss"] + best["log_loss_se"], 5),
        "chosen": chosen, "differs": not is_setting(chosen, current),
        "chosen_settings": as_settings(chosen, model), "results": results,
    }


def as_settings(result: dict, model: str) -> dict:
    """The verifier block for configs/default.yaml that reproduces a result."""
    m, view, prompt = result["rung"]
    step = {"view": view, "prompt": prompt, **({"model": m} if m != model else {})}
    return {"confidence_threshold": result["threshold"], "max_requeries": 1, "ladder": [step]}


def write_config(verifier: dict, path: Path = CONFIG) -> None:
    """The chosen threshold and ladder into the `verifier:` block of the YAML, comments kept."""
    text = path.read_text()
    step = ", ".join(f"{k}: {v}" for k, v in verifier["ladder"][0].items())
    edits = ((r"^(  confidence_threshold:[ ]*)(\S+)", rf"\g<1>{verifier['confidence_threshold']}"),
             (r"^(  max_requeries:[ ]*)(\S+)", rf"\g<1>{verifier['max_requeries']}"),
             (r"^(  ladder:\n)(?:    - .*\n)+", rf"\g<1>    - {{{step}}}\n"))
    for pattern, repl in edits:
        text, n = re.subn(pattern, repl, text, count=1, flags=re.M)
        if n != 1:
            raise ValueError(f"{path}: no verifier line matching {pattern!r} to set")
    path.write_text(text)


def _line(name: str, r: dict) -> str:
    return (f"| {name} | {r['threshold']} | {' / '.join(r['rung'])} | {r['variant']} | {r['C']} | "
            f"{r['log_loss']:.4f} ± {r['log_loss_se']:.4f} | {r['accuracy']:.3f} | "
            f"{r['recall_cancer']:.3f} | {r['precision_cancer']:.3f} | {r['operating_point']:.3f} "
            f"| {r['requery_rate']:.1%} | {r['mean_calls']:.3f} |")


HEADER = ("| setting | threshold | re-query rung | adopted variant | C | CV log-loss ± SE | "
          "accuracy | Cancer recall | precision | operating point | re-queried | calls/abstract |\n"
          "|---|---|---|---|---|---|---|---|---|---|---|---|")


def render(report: dict) -> str:
    c, now = report["chosen"], report["current"]
    verdict = (f"It **differs** from configs/default.yaml (threshold {now['threshold']}, rung "
               f"{' / '.join(now['rung'])}); `--write-config` writes it, then `make decision-fit` "
               "must refit the decision for the new rung."
               if report["differs"] else "It is the setting configs/default.yaml already has: "
               "nothing to change.")
    grid = "\n".join(_line("", r) for r in sorted(report["results"],
                                                   key=lambda r: (r["log_loss"], r["mean_calls"])))
    calls = "\n".join(f"| {k} | {v:.3f} |" for k, v in report["calls"].items())
    return f"""# Verifier tuning under the fused decision ({report['when']})

Generated by `python -m eval.verifier_tuning` (`make verifier-tune`); first call
`{report['model']}`, the {report['n']} val abstracts, never test. For each candidate re-query
rung the fused decision was fitted as `make decision-fit` fits it (variants
{', '.join(report['variants'])}; C in {report['c_grid']}; repeated stratified 5-fold CV,
{report['repeats']} repeats, out-of-fold), and for each verifier threshold its adoption rule
picked the variant and C; every figure below is from held-out folds replaying the
verifier's trigger and the operating point (target Cancer recall {report['target_recall']}).
One rung: the decision reads one re-query.

## Selection rule (written before the grid was computed)

Lowest repeated-CV log-loss L*; settings within L* + SE* (SE*: the standard error of the
best setting's log-loss over the repeats) tie; among ties the fewest classifier calls per
abstract, then the current setting, then the lowest log-loss. Here L* =
{report['lowest_log_loss']['log_loss']:.4f}, tie band <= {report['tie_band']:.4f}.

Chosen: **threshold {c['threshold']}, re-query {' / '.join(c['rung'])}**
(`{json.dumps(report['chosen_settings'])}`).
{verdict} Choosing among {len(report['results'])} settings (and, inside each, among the fit's
variants and C values) on the same folds makes these CV figures optimistic.

{HEADER}
{_line("**chosen**", c)}
{_line("current (configs/default.yaml)", now)}
{_line("lowest log-loss", report['lowest_log_loss'])}

Every setting (sorted by CV log-loss):

{HEADER}
{grid}

Each call alone on val (accuracy of its calibrated P at 0.5):

| call (model / view / prompt) | accuracy |
|---|---|
{calls}

![CV log-loss by threshold and rung](tuning.png)
"""


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), dpi=120)
    by_rung: dict[str, list[dict]] = {}
    for r in report["results"]:
        by_rung.setdefault(" / ".join(r["rung"]), []).append(r)
    for name, rs in by_rung.items():
        rs = sorted(rs, key=lambda r: r["threshold"])
        t = [r["threshold"] for r in rs]
        axes[0].errorbar(t, [r["log_loss"] for r in rs], yerr=[r["log_loss_se"] for r in rs],
                         marker="o", ms=3, capsize=2, label=name)
        axes[1].plot(t, [r["mean_calls"] for r in rs], marker="o", ms=3, label=name)
    c = report["chosen"]
    axes[0].scatter([c["threshold"]], [c["log_loss"]], s=90, facecolors="none",
                    edgecolors="k", zorder=3, label="chosen")
    axes[0].axhline(report["tie_band"], color="grey", linestyle=":", label="tie band")
    axes[0].set_ylabel("CV log-loss (val, held-out)")
    axes[1].set_ylabel("classifier calls per abstract")
    for ax in axes:
        ax.set_xlabel("verifier confidence threshold")
    axes[0].legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=None)
    ap.add_argument("--model", default=None, help="the first-call classifier")
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--variants", nargs="+", choices=VARIANTS[1:], default=list(VARIANTS[1:]))
    ap.add_argument("--write-config", action="store_true",
                    help="put the choice into configs/default.yaml when it differs")
    ap.add_argument("--out", type=Path, default=REPORT_DIR)
    args = ap.parse_args(argv)
    try:
        settings = load_settings(args.config,
                                 classifier={"model": args.model} if args.model else None)
        report = tune(settings, args.repeats, tuple(args.variants))
    except (ConfigError, ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "tuning.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / "tuning.md").write_text(render(report))
    plot(report, args.out / "tuning.png")
    c = report["chosen"]
    print(f"chosen: {json.dumps(report['chosen_settings'])}: CV log-loss {c['log_loss']} "
          f"(current {report['current']['log_loss']}); differs: {report['differs']}")
    if report["differs"] and args.write_config:
        path = Path(args.config) if args.config else CONFIG
        write_config(report["chosen_settings"], path)
        print(f"wrote {path}: refit the decision with `make decision-fit`")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
