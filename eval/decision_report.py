"""The fused decision on the test split and on the out-of-domain dev check, beside every model.

    python -m eval.decision_report [--config FILE] [--n-boot 1000]

Reads cached classifier predictions (`eval.compare`, `eval.ood --predict`) and the disease
evidence, replays the graph's verifier + decision (tools/decision.py) with the committed
decision file, and, when `make verifier-report` has run the whole graph on test, reads that
run's records too (its P(Cancer) and labels are the graph's own). Nothing is chosen here:
the adoption rule and the targets are fixed in docs/decision.md and reports/decision/fit.md
before this report exists. Writes reports/decision/{test,ood}.{json,md} and decision.png.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np

from core import metrics as M
from core.settings import ConfigError, Settings, load_model_config, load_settings
from eval.compare import REPORT_DIR as PRED_DIR
from eval.compare import predict
from eval.decision_data import Rows, load_rows, replay
from eval.decision_fit import REPORT_DIR
from tools.decision import load_decision

MODELS = ("keyword-rule", "tfidf-logreg", "minilm", "qwen2.5-0.5b", "qwen2.5-1.5b")
REFERENCE = "keyword-rule"
TARGETS = {"accuracy": 0.98, "recall_cancer": 0.98, "precision_cancer": 0.95, "ece": 0.03}
OOD_TARGETS = {"recall_cancer": 0.95, "precision_cancer": 0.90}


def shifted(p: np.ndarray, threshold: float) -> np.ndarray:
    """A score that crosses 0.5 exactly where p crosses the threshold (labels and ranks of
    the operating point, for metrics written for 0.5)."""
    p = np.clip(p, 1e-9, 1 - 1e-9)
    z = np.log(p / (1 - p)) - np.log(threshold / (1 - threshold))
    return 1 / (1 + np.exp(-z))


def evaluate(y: np.ndarray, p: np.ndarray, threshold: float, n_boot: int) -> dict:
    """Label metrics at the threshold; ECE of p itself (the calibrated probability)."""
    result = M.evaluate(y, shifted(p, threshold), n_boot=n_boot)
    rng = np.random.default_rng(M.SEED).integers(0, len(y), size=(n_boot, len(y)))
    eces = np.array([M.expected_calibration_error(y[i], p[i]) for i in rng])
    result["metrics"]["ece"] = M.expected_calibration_error(y, p)
    result["ci95"]["ece"] = [float(np.percentile(eces, 2.5)), float(np.percentile(eces, 97.5))]
    result["threshold"] = threshold
    return result


def mcnemar(y: np.ndarray, a: np.ndarray, b: np.ndarray) -> dict:
    """Exact McNemar test on the discordant pairs of two label vectors."""
    from scipy.stats import binomtest

    ra, rb = a == y, b == y
    only_a, only_b = int((ra & ~rb).sum()), int((~ra & rb).sum())
    p = binomtest(only_a, only_a + only_b, 0.5).pvalue if only_a + only_b else 1.0
    return {"a_right_b_wrong": only_a, "a_wrong_b_right": only_b, "p_value": float(p)}


# the graph before the fused decision: MiniLM re-queried when the mean policy was unsure
# within logit(0.6) of 0.5 or contradicted the diseases; the label was the mean at 0.5
BEFORE_CALL = ("minilm", "title_and_abstract", "default")
BEFORE_THRESHOLD = 0.6


def old_asked(rows: Rows) -> np.ndarray:
    """Which abstracts the old verifier re-queried (the first call unsure or inconsistent)."""
    from tools.decision import find_problem

    return np.array([find_problem(rows.first[k], [{"name": n, "is_cancer": True}
                                                  for n in e.cancer_concepts],
                                  BEFORE_THRESHOLD) is not None
                     for k, e in enumerate(rows.evidence)])


def old_policy(rows: Rows, before_requery: np.ndarray) -> np.ndarray:
    """P(Cancer) the graph gave before the fused decision: the mean of the first call and
    the MiniLM re-query where the old verifier asked, else the first call."""
    return np.where(old_asked(rows), (rows.first + before_requery) / 2, rows.first)


def graph_run(rows: Rows, path: Path) -> tuple[np.ndarray, np.ndarray] | None:
    """P(Cancer) per row from `make verifier-report`'s graph run, when it covers these rows
    and holds the fused decision (older runs do not)."""
    if not path.exists():
        return None
    got = {r["abstract_id"]: r for r in json.loads(path.read_text()).get("rows", [])}
    if set(got) != set(rows.ids) or any("p_cancer" not in r for r in got.values()):
        return None
    return np.array([got[i]["p_cancer"] for i in rows.ids]), np.array(
        [got[i]["threshold"] for i in rows.ids])


def evaluate_all(rows: Rows, settings: Settings, n_boot: int, missing: str | None = None) -> dict:
    """Every model alone, then (unless `missing` says why the graph's scores are not there)
    the graph before and after this change."""
    model = load_decision(settings.decision.folder(),
                          load_model_config(settings.classifier.model).name)
    if model is None:
        raise FileNotFoundError(f"no fitted decision for {settings.classifier.model} "
                                "(run `make decision-fit`)")
    target = settings.decision.target_recall
    entries: dict[str, dict] = {}
    preds: dict[str, np.ndarray] = {}
    for name in MODELS:
        try:
            p = predict(name, "finetuned", rows.name, PRED_DIR, False, True,
                        _examples(rows.name, settings))["p"]
        except FileNotFoundError as exc:
            print(f"skip {name}: {exc}", file=sys.stderr)
            continue
        preds[name] = (p >= 0.5).astype(int)
        entries[name] = {"what": "the model alone at 0.5", **evaluate(rows.y, p, 0.5, n_boot)}
    if missing:
        return {"split": rows.name, "n": len(rows.y), "n_cancer": int(rows.y.sum()),
                "decision": model.describe(), "target_recall": target,
                "threshold": model.threshold(target), "final": None, "missing": missing,
                "models": entries, "fused_errors": [], "cost": None}
    before_requery = load_rows(rows.name, settings, cached_only=True, call=BEFORE_CALL).requery
    before = old_policy(rows, before_requery)
    preds["graph before (mean)"] = (before >= 0.5).astype(int)
    entries["graph before (mean)"] = {"what": "first call, averaged with the re-query when the "
                                      "old verifier asked, at 0.5",
                                      **evaluate(rows.y, before, 0.5, n_boot)}
    fused = replay(rows, model, target, settings)
    threshold = float(fused["threshold"][0])
    preds["graph: fused decision"] = fused["label"]
    entries["graph: fused decision"] = {
        "what": f"offline replay of verify + decide at threshold {threshold:.3f}",
        "requery_rate": float(fused["requeried"].mean()),
        **evaluate(rows.y, fused["p"], threshold, n_boot)}
    runs = {"test": "verifier.json", "ood-dev": "ood.json"}  # make verifier-report / decision-ood
    run = graph_run(rows, REPORT_DIR.parent / "verifier" / runs[rows.name]) \
        if rows.name in runs else None
    if run is not None:
        p_run, t_run = run
        preds["graph run"] = (p_run >= t_run).astype(int)
        entries["graph run"] = {
            "what": "the whole graph (eval.verifier_effect), its records' P(Cancer) and labels",
            "agrees_with_replay": int((preds["graph run"] == fused["label"]).sum()),
            **evaluate(rows.y, p_run, float(t_run[0]), n_boot)}
    ref = preds.get(REFERENCE)
    final = "graph run" if "graph run" in preds else "graph: fused decision"
    for name, labels in preds.items():
        if ref is not None and name != REFERENCE:
            entries[name]["vs_keyword_rule"] = {
                **M.paired_difference(rows.y, labels.astype(float), ref.astype(float),
                                      n_boot=n_boot),
                "mcnemar": mcnemar(rows.y, labels, ref)}
    cost = decision_cost(rows, model, settings, fused["requeried"].mean(),
                         float(old_asked(rows).mean()))
    errors = [{"abstract_id": rows.ids[k], "gold": int(rows.y[k]),
               "p_cancer": float(fused["p"][k]),
               "first_call": float(rows.first[k]), "requery": float(rows.requery[k]),
               "requeried": bool(fused["requeried"][k]),
               "cancer_concepts": list(rows.evidence[k].cancer_concepts[:4])}
              for k in np.flatnonzero(fused["label"] != rows.y)]
    return {"split": rows.name, "n": len(rows.y), "n_cancer": int(rows.y.sum()),
            "decision": model.describe(), "target_recall": target, "threshold": threshold,
            "final": final, "models": entries, "fused_errors": errors, "cost": cost,
            "requery_model": rows.requery_call[0]}


def decision_cost(rows: Rows, model, settings: Settings, rate: float, rate_before: float) -> dict:
    """What the decision adds per abstract: its own time (measured here, the verifier's
    extra `first`-stage read included) and the re-query rate's change, priced with the
    classifiers' measured rates (reports/classification/throughput_*.json)."""
    import time

    from eval.decision_data import with_requery

    start = time.perf_counter()
    for k, e in enumerate(rows.evidence):
        model.decide(e, settings.decision.target_recall)
        model.decide(with_requery(rows, k), settings.decision.target_recall)
    decide_s = (time.perf_counter() - start) / len(rows.evidence)

    def rate_of(name: str) -> float | None:
        path = PRED_DIR / f"throughput_{name}.json"
        if not path.exists():
            return None
        return max(r["abstracts_per_s"] for r in json.loads(path.read_text())["results"])

    first, second = rate_of(settings.classifier.model), rate_of(rows.requery_call[0])
    second_before = rate_of(BEFORE_CALL[0])
    out = {"decide_s_per_abstract": decide_s, "requery_rate": rate,
           "requery_rate_before": rate_before, "first_call_per_s": first,
           "requery_per_s": second, "requery_before_per_s": second_before}
    if first and second and second_before:
        before = 1 / first + rate_before / second_before
        after = 1 / first + rate / second + decide_s
        out.update(s_per_abstract_before=before, s_per_abstract_after=after,
                   throughput_ratio=before / after)
    return out


def _examples(name: str, settings: Settings):
    from eval.ood import OOD_NAME, load_ood, ood_examples
    from finetune.data import load_split

    return ood_examples(load_ood(settings)) if name == OOD_NAME else load_split(name, settings)


def targets(report: dict, wanted: dict[str, float]) -> list[dict]:
    if report["final"] is None:
        return []
    r = report["models"][report["final"]]
    out = []
    for metric, bar in wanted.items():
        value, ci = r["metrics"][metric], r["ci95"][metric]
        met = value <= bar if metric == "ece" else value >= bar
        out.append({"target": f"{metric} {'<=' if metric == 'ece' else '>='} {bar}",
                    "value": value, "ci95": ci, "met": bool(met)})
    if vs := r.get("vs_keyword_rule"):
        lo = vs["ci95"][0]
        out.append({"target": "beats the keyword rule (paired CI > 0 or McNemar p < 0.05)",
                    "value": vs["difference"], "ci95": vs["ci95"],
                    "met": bool(lo > 0 or (vs["difference"] > 0
                                           and vs["mcnemar"]["p_value"] < 0.05)),
                    "p_value": vs["mcnemar"]["p_value"]})
    return out


def _row(name: str, r: dict) -> str:
    m, ci = r["metrics"], r["ci95"]

    def f(k: str) -> str:
        return f"{m[k]:.3f} [{ci[k][0]:.3f}, {ci[k][1]:.3f}]"

    vs = r.get("vs_keyword_rule")
    versus = (f"{vs['difference']:+.3f} [{vs['ci95'][0]:+.3f}, {vs['ci95'][1]:+.3f}], "
              f"p={vs['mcnemar']['p_value']:.3f}") if vs else "-"
    c = r["confusion"]
    return (f"| {name} | {r['threshold']:.3f} | {f('accuracy')} | {f('recall_cancer')} | "
            f"{f('precision_cancer')} | {m['roc_auc']:.4f} | {f('ece')} | "
            f"{c['fn']} / {c['fp']} | {versus} |")


def render(report: dict, title: str, tgt: list[dict], extra: str = "") -> str:
    rows = "\n".join(_row(n, r) for n, r in report["models"].items())
    tgts = "\n".join(f"| {t['target']} | {t['value']:.3f} [{t['ci95'][0]:.3f}, "
                     f"{t['ci95'][1]:.3f}] | {'yes' if t['met'] else '**no**'} |" for t in tgt)
    errs = "\n".join(
        f"| {e['abstract_id']} | {'Cancer' if e['gold'] else 'Non-Cancer'} | "
        f"{e['p_cancer']:.3f} | {e['first_call']:.3f} | {e['requery']:.3f} | "
        f"{'yes' if e['requeried'] else 'no'} | {', '.join(e['cancer_concepts']) or '-'} |"
        for e in report["fused_errors"])
    if report["final"] is None:
        return f"""# {title}

Generated by `python -m eval.decision_report` (`make decision-report`). {report['n']} abstracts,
{report['n_cancer']} Cancer. **The graph is not evaluated here: {report['missing']}.** Each
model alone at 0.5 (95% bootstrap intervals; versus the keyword rule: paired bootstrap and
an exact McNemar test):

| model / policy | threshold | accuracy | Cancer recall | Cancer precision | ROC-AUC | ECE | \
FN / FP | vs keyword rule: accuracy [95% CI], McNemar p |
|---|---|---|---|---|---|---|---|---|
{rows}
{extra}"""
    fused = report["models"]["graph: fused decision"]
    c = report["cost"]
    cost = (f"The decision step takes {c['decide_s_per_abstract'] * 1e6:.0f} µs per abstract "
            f"(measured in this run, both stages); the verifier re-queried "
            f"{c['requery_rate']:.1%} of the abstracts, against {c['requery_rate_before']:.1%} "
            f"with the mean policy before it (MiniLM re-query at {BEFORE_THRESHOLD}). ")
    if "throughput_ratio" in c:
        cost += (f"Priced with the measured classifier rates (first call {c['first_call_per_s']}, "
                 f"re-query {c['requery_per_s']}, MiniLM before "
                 f"{c['requery_before_per_s']} abstracts/s), an abstract costs "
                 f"{c['s_per_abstract_after']:.3f} s against {c['s_per_abstract_before']:.3f} s "
                 f"before: throughput x{c['throughput_ratio']:.3f} (disease extraction and "
                 f"citations are unchanged). No model call was added: the re-query is the "
                 f"verifier's.")
    return f"""# {title}

Generated by `python -m eval.decision_report` (`make decision-report`). {report['n']} abstracts,
{report['n_cancer']} Cancer. Decision: {report['decision']}; target recall
{report['target_recall']} -> threshold {report['threshold']:.3f} (chosen on val's held-out
folds, reports/decision/fit.md). 95% intervals: {M.N_BOOT}-resample seeded bootstrap
(seed {M.SEED}); versus the keyword rule: paired bootstrap of the accuracy difference and
an exact McNemar test. The fused decision re-queried {fused['requery_rate']:.1%} of the
abstracts (offline replay). ECE is over P(Cancer) itself (10 bins of the confidence).

| model / policy | threshold | accuracy | Cancer recall | Cancer precision | ROC-AUC | ECE | \
FN / FP | vs keyword rule: accuracy [95% CI], McNemar p |
|---|---|---|---|---|---|---|---|---|
{rows}

## Targets ({report['final']})

| target | value [95% CI] | met |
|---|---|---|
{tgts}

## Cost

{cost}

## The fused decision's errors

| id | gold | fused P(Cancer) | first call | re-query ({report['requery_model']}) | re-queried | \
cancer concepts found |
|---|---|---|---|---|---|---|
{errs}
{extra}"""


SYNDROMES = ("Syndrome", "Neurofibromatos", "Tuberous", "Polyposis", "Hippel", "Multiple "
             "Endocrine", "Fraumeni", "Cowden", "Hamartoma", "Nevus", "Mastocytosis")


def ood_conventions(settings: Settings, report: dict) -> str:
    """Where the C04 labelling rule differs from the shared abstracts' labels."""
    from eval.ood import load_ood

    docs = {d.abstract_id: d for d in load_ood(settings)}
    concepts = Counter(c for d in docs.values() for c in d.cancer_concepts)
    synd = [i for i, d in docs.items() if d.label and all(
        any(s in c for s in SYNDROMES) for c in d.cancer_concepts)]
    top = ", ".join(f"{c} ({n})" for c, n in concepts.most_common(15))
    text = f"""
## Labelling convention: C04 gold concepts vs the shared abstracts

The most frequent gold neoplasm concepts: {top}.

- **Hereditary tumour syndromes.** MeSH files them under Neoplasms (C04.700), so an
  abstract whose only neoplasm concepts are such syndromes is Cancer here:
  {len(synd)} of the {sum(d.label for d in docs.values())} Cancer abstracts
  ({', '.join(synd[:8]) or '-'}{' ...' if len(synd) > 8 else ''}). The shared abstracts
  label several of them Non-Cancer: on the test split 21 Non-Cancer abstracts carry a
  neoplasm concept in the title, mostly Neurofibromatosis 1/2 and Tuberous Sclerosis
  (reports/classification/audit.md).
- **Any neoplasm mention counts.** One gold mention suffices, even a side remark (a drug
  "used in cancer therapy" in a BC5CDR toxicity abstract, a tumour as an adverse event);
  the shared abstracts' Cancer label is about what the paper is about.
- **Mentions are annotated by hand, not found.** A neoplasm the annotators did not mark,
  or marked under a non-neoplasm concept, leaves the abstract Non-Cancer here.

The disease extractor's merge rule was chosen on these dev sets (reports/diseases/rules.md),
so the evidence features are slightly tuned to them; the classifiers never saw them.
"""
    if report["final"] is None:
        return text
    fn = "\n".join(f"- {e['abstract_id']}: gold concepts "
                   f"{', '.join(docs[e['abstract_id']].cancer_concepts)}; P {e['p_cancer']:.3f}"
                   for e in report["fused_errors"] if e["gold"])
    fp = "\n".join(f"- {e['abstract_id']}: found {', '.join(e['cancer_concepts']) or '-'}; "
                   f"P {e['p_cancer']:.3f}" for e in report["fused_errors"] if not e["gold"])
    return text + f"""
Missed Cancer abstracts (gold concepts; fused P):
{fn or '- none'}

False alarms (cancer concepts the extractor found; fused P):
{fp or '- none'}
"""


def plot(test: dict, ood: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), dpi=120)
    for ax, report, title in ((axes[0], test, "test split"), (axes[1], ood, "OOD dev check")):
        names = list(report["models"])
        rec = [report["models"][n]["metrics"]["recall_cancer"] for n in names]
        prec = [report["models"][n]["metrics"]["precision_cancer"] for n in names]
        x = np.arange(len(names))
        ax.bar(x - 0.2, rec, 0.4, label="Cancer recall", color="#c55")
        ax.bar(x + 0.2, prec, 0.4, label="Cancer precision", color="#58a")
        ax.set_xticks(x, [n.replace(": ", "\n").replace(" (", "\n(") for n in names], fontsize=6)
        ax.set_ylim(0.5, 1.0)
        ax.set_title(title)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    from eval.ood import OOD_NAME

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=None)
    parser.add_argument("--n-boot", type=int, default=M.N_BOOT)
    parser.add_argument("--out", type=Path, default=REPORT_DIR)
    args = parser.parse_args(argv)
    try:
        settings = load_settings(args.config)
        reports = {}
        for name, wanted in (("test", TARGETS), (OOD_NAME, OOD_TARGETS)):
            missing = None
            try:
                rows = load_rows(name, settings, cached_only=True)
            except FileNotFoundError as exc:
                if name != OOD_NAME:
                    raise
                missing = f"{exc} (run `make decision-ood`)"
                rows = load_rows(name, settings, scores=False)
            reports[name] = report = evaluate_all(rows, settings, args.n_boot, missing)
            report["targets"] = targets(report, wanted)
    except (ConfigError, ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    test, ood = reports["test"], reports[OOD_NAME]
    (args.out / "test.json").write_text(json.dumps(test, indent=2) + "\n")
    (args.out / "ood.json").write_text(json.dumps(ood, indent=2) + "\n")
    (args.out / "test.md").write_text(render(test, "The fused decision on the test split",
                                             test["targets"]))
    (args.out / "ood.md").write_text(render(
        ood, "Out-of-domain check: NCBI Disease dev + BC5CDR dev (a report, not a choice)",
        ood["targets"], ood_conventions(settings, ood)))
    plot(test, ood, args.out / "decision.png")
    for name, r in reports.items():
        if r["final"] is None:
            print(f"{name}: graph not evaluated ({r['missing']})")
            continue
        final = r["models"][r["final"]]["metrics"]
        print(f"{name}: {r['final']} accuracy {final['accuracy']:.3f} recall "
              f"{final['recall_cancer']:.3f} precision {final['precision_cancer']:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
