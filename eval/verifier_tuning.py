"""Choose the verifier's threshold and escalation ladder on the validation split.

    python -m eval.verifier_tuning [--model qwen2.5-1.5b] [--split val] [--limit N]

Scores every candidate call (the configured model on other views and prompts; other
models) on the split once, finds the cancer concepts the disease route sees, then
replays the verifier's policy as it was before the fused decision (mean P(Cancer) over
attempts at 0.5, re-query while unsure or inconsistent with the diseases) for every
threshold and ladder of a grid. Since 2026-12-03 the graph labels with the fused decision
(docs/decision.md), whose fit replays its own trigger; this grid still ranks ladders by
how much a re-query adds to a mean, not to the fusion.
The best rule by accuracy (ties: fewer classifier calls, then the current setting) is
the one to put in configs/default.yaml; `make verifier-report` then measures it on test.
Writes reports/verifier/tuning.{json,md,png}.
"""

from __future__ import annotations

import argparse
import json
import time
from itertools import permutations, product
from pathlib import Path
from statistics import fmean

from core.settings import PROJECT_ROOT, LadderStep, Settings, View, load_settings
from finetune.data import load_corpus, read_split
from tools.decision import find_problem
from tools.diseases import extract_batch
from tools.preprocess import Preprocessed, model_text, preprocess

REPORT_DIR = PROJECT_ROOT / "reports" / "verifier"
THRESHOLDS = (0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.99)
OTHER_MODELS = ("tfidf-logreg", "minilm", "keyword-rule")
Call = tuple[str, View, str]  # (model, view, prompt), as agents.classifier names a call


def candidate_calls(model: str) -> list[Call]:
    """The first call, then the rungs a ladder may use: the same model on another view or
    prompt (each costs a pass over the split: ~5 min for the 1.5B on val), other models."""
    rungs: tuple[tuple[View, str], ...] = (
        ("title_and_abstract", "default"), ("abstract_first", "default"),
        ("head_and_tail", "default"), ("abstract_first", "definition"))
    own = [(model, view, prompt) for view, prompt in rungs]
    return own + [(m, "title_and_abstract", "default") for m in OTHER_MODELS if m != model]


def replay(p_by_call: dict[Call, float], cancer_found: bool, threshold: float,
           ladder: tuple[Call, ...]) -> tuple[float, int]:
    """(final P(Cancer), classifier calls) the verifier reaches for one abstract."""
    calls = [next(iter(p_by_call))]  # the first call
    mentions = [{"name": "cancer", "is_cancer": True}] if cancer_found else []
    while True:
        p = fmean(p_by_call[c] for c in calls)
        if find_problem(p, mentions, threshold) is None or len(calls) > len(ladder):
            return p, len(calls)
        calls.append(ladder[len(calls) - 1])


def evaluate(rows: list[dict], threshold: float, ladder: tuple[Call, ...]) -> dict:
    finals = [replay(r["p"], r["cancer_found"], threshold, ladder) for r in rows]
    correct = [(p >= 0.5) == r["gold"] for (p, _), r in zip(finals, rows, strict=True)]
    first = [(next(iter(r["p"].values())) >= 0.5) == r["gold"] for r in rows]
    return {
        "threshold": threshold,
        "ladder": [list(c) for c in ladder],
        "accuracy": round(sum(correct) / len(rows), 4),
        "first_call_accuracy": round(sum(first) / len(rows), 4),
        "mean_calls": round(fmean(n for _, n in finals), 3),
        "requery_rate": round(sum(n > 1 for _, n in finals) / len(rows), 4),
        "fixed": sum(c and not f for c, f in zip(correct, first, strict=True)),
        "broken": sum(f and not c for c, f in zip(correct, first, strict=True)),
    }


def score_calls(docs: list[Preprocessed], calls: list[Call]) -> dict[Call, list[float]]:
    from tools.classifier.tool import classify_abstracts

    out = {}
    for model, view, prompt in calls:
        t0 = time.perf_counter()
        scores = classify_abstracts.invoke(
            {"texts": [model_text(d, view) for d in docs], "model": model, "prompt": prompt})
        out[(model, view, prompt)] = [s["Cancer"] for s in scores]
        print(f"{model} {view} {prompt}: {len(docs)} in {time.perf_counter() - t0:.0f} s",
              flush=True)
    return out


def tune(settings: Settings, split: str, limit: int | None) -> dict:
    model = settings.classifier.model
    corpus = {r.abstract_id: r for r in load_corpus(settings)}
    ids = read_split(split)[:limit]
    docs = [preprocess(corpus[i].title, corpus[i].abstract) for i in ids]
    mentions = extract_batch(docs, settings.diseases.routes, rule=settings.diseases.merge_rule(),
                             backend=settings.diseases.model_backend)
    first = candidate_calls(model)[0]
    # as agents.classifier.next_call walks it: a rung repeating an earlier call is skipped
    current_ladder = tuple(dict.fromkeys(
        [first, *(_call(s, model) for s in settings.verifier.ladder)]
        [: settings.verifier.max_requeries + 1]))[1:]
    calls = list(dict.fromkeys([*candidate_calls(model), *current_ladder]))
    scored = score_calls(docs, calls)
    rows = [
        {"abstract_id": i, "gold": corpus[i].label == "Cancer",
         "cancer_found": any(m.is_cancer for m in found),
         "p": {c: scored[c][k] for c in calls}}
        for k, (i, found) in enumerate(zip(ids, mentions, strict=True))
    ]
    rungs = calls[1:]
    ladders = [()] + [p for n in (1, 2) for p in permutations(rungs, n)]
    results = [evaluate(rows, t, lad) for t, lad in product(THRESHOLDS, ladders)]
    now = evaluate(rows, settings.verifier.confidence_threshold, current_ladder)
    best = max(results, key=lambda r: (r["accuracy"], -r["mean_calls"], r == now))
    return {
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "model": model, "split": split, "n": len(rows),
        "calls": {" / ".join(c): round(sum((p >= 0.5) == r["gold"] for p, r in zip(
            scored[c], rows, strict=True)) / len(rows), 4) for c in calls},
        "current": now, "best": best, "no_verifier": evaluate(rows, 1.0, ()),
        "results": results,
    }


def _call(step: LadderStep, model: str) -> Call:
    return (step.model or model, step.view, step.prompt)


def as_settings(result: dict, model: str) -> dict:
    """The verifier block for configs/default.yaml that reproduces a result."""
    ladder = []
    for m, view, prompt in result["ladder"]:
        step = {"view": view, "prompt": prompt}
        if m != model:
            step["model"] = m
        ladder.append(step)
    return {"confidence_threshold": result["threshold"],
            "max_requeries": len(result["ladder"]), "ladder": ladder}


def _markdown(report: dict) -> str:
    def line(name: str, r: dict) -> str:
        ladder = " -> ".join("/".join(c) for c in r["ladder"]) or "(none)"
        return (f"| {name} | {r['threshold']} | {ladder} | **{r['accuracy']:.3f}** | "
                f"{r['requery_rate']:.1%} | {r['mean_calls']:.2f} | {r['fixed']} | {r['broken']} |")

    calls = "\n".join(f"| {c} | {a:.3f} |" for c, a in report["calls"].items())
    return f"""# Verifier tuning on the {report['split']} split

Generated by `python -m eval.verifier_tuning` ({report['when']}); model `{report['model']}`,
{report['n']} abstracts. Every candidate call was scored once; the verifier's policy was
replayed for {len(report['results'])} (threshold, ladder) settings. Chosen on this split:
measure it on test with `make verifier-report`.

| setting | threshold | ladder | accuracy | re-queried | calls/abstract | fixed | broken |
|---|---|---|---|---|---|---|---|
{line("no verifier", report["no_verifier"])}
{line("current (configs/default.yaml)", report["current"])}
{line("**best**", report["best"])}

Best as configuration: `{json.dumps(as_settings(report["best"], report["model"]))}`

Each call alone (accuracy at 0.5):

| call (model / view / prompt) | accuracy |
|---|---|
{calls}

![accuracy by threshold](tuning.png)
"""


def _plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for t in THRESHOLDS:
        accs = [r["accuracy"] for r in report["results"] if r["threshold"] == t]
        ax.scatter([t] * len(accs), accs, s=8, alpha=0.5, color="#58a")
    ax.axhline(report["no_verifier"]["accuracy"], color="k", linestyle="--", label="no verifier")
    ax.scatter([report["best"]["threshold"]], [report["best"]["accuracy"]], color="#c33",
               label="best", zorder=3)
    ax.set_xlabel("confidence threshold")
    ax.set_ylabel(f"accuracy ({report['split']})")
    ax.set_title("Verifier settings (dots: ladders)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None)
    ap.add_argument("--config", default=None)
    ap.add_argument("--split", default="val", choices=["train", "val"],
                    help="never test: the report on test measures the choice")
    ap.add_argument("--limit", type=int, default=None, help="first N abstracts (smoke runs)")
    ap.add_argument("--out", type=Path, default=REPORT_DIR)
    args = ap.parse_args(argv)
    settings = load_settings(args.config, classifier={"model": args.model} if args.model else None)
    report = tune(settings, args.split, args.limit)
    args.out.mkdir(parents=True, exist_ok=True)
    slim = {**report, "results": sorted(report["results"], key=lambda r: -r["accuracy"])[:50]}
    (args.out / "tuning.json").write_text(json.dumps(slim, indent=2) + "\n")
    (args.out / "tuning.md").write_text(_markdown(report))
    _plot(report, args.out / "tuning.png")
    best = json.dumps(as_settings(report["best"], report["model"]))
    print(f"best: {best} -> {report['best']['accuracy']} "
          f"(current {report['current']['accuracy']}, none {report['no_verifier']['accuracy']})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
