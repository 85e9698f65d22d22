"""Preprocessing benchmark and corpus census over the 1000 labelled abstracts.

    python -m eval.bench_preprocess [--passes 7] [--baseline-rev 4d247ac]

Throughput is measured in this one process pinned to one CPU core (target: >= 2,000
abstracts/s). The census counts what preprocessing removed and found (metadata, citations,
statuses, sections). With --baseline-rev, the model text of every abstract is compared with
the one `tools/preprocess.py` gave at that git revision, so a change to preprocessing states
how many training inputs it altered. Writes reports/preprocessing/bench.{json,md,png}.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from core.io import read_folder
from core.settings import PROJECT_ROOT, View, load_settings
from tools.citations import analyse_citations
from tools.preprocess import model_text, preprocess
from tools.summary import study_type

OUT_DIR = PROJECT_ROOT / "reports" / "preprocessing"
TARGET = 2000.0


def _pin_one_core() -> str:
    if hasattr(os, "sched_setaffinity"):
        core = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {core})
        return f"pinned to core {core}"
    return "not pinned (no sched_setaffinity on this OS)"


def _load_average() -> list[float] | None:
    return [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None


def throughput(rows: list, passes: int) -> list[float]:
    """Abstracts per second for each full pass over the corpus."""
    rates = []
    for _ in range(passes):
        start = time.perf_counter()
        for row in rows:
            preprocess(row.title, row.abstract)
        rates.append(len(rows) / (time.perf_counter() - start))
    return rates


def census(rows: list) -> dict:
    statuses: Counter[str] = Counter()
    metadata: Counter[str] = Counter()
    metadata_files: Counter[str] = Counter()
    citations: Counter[str] = Counter()
    citation_files: Counter[str] = Counter()
    functions: Counter[str | None] = Counter()  # None: a citation the rules gave no function
    study_types: dict[str, Counter[str]] = {}
    sections = with_sections = markup_files = with_citations = 0
    for row in rows:
        doc = preprocess(row.title, row.abstract)
        study_types.setdefault(row.label or "unlabelled", Counter())[study_type(doc)] += 1
        functions.update(c.function for c in analyse_citations(doc).citations)
        with_citations += bool(doc.citations)
        statuses[doc.status] += 1
        for kind, values in doc.metadata.items():
            metadata[kind] += len(values)
            metadata_files[kind] += 1
        kinds = Counter(c.kind for c in doc.citations)
        citations.update(kinds)
        citation_files.update(kinds.keys())
        sections += len(doc.sections)
        with_sections += bool(doc.sections)
        markup_files += any(r.kind == "markup" for r in doc.removed)
    return {
        "statuses": dict(statuses.most_common()),
        "metadata_items": dict(metadata.most_common()),
        "metadata_files": dict(metadata_files.most_common()),
        "citations": dict(citations.most_common()),
        "citation_files": dict(citation_files.most_common()),
        "files_with_citations": with_citations,
        "citation_functions_rules": dict(functions.most_common()),
        "study_types_by_label": {k: dict(v.most_common()) for k, v in sorted(study_types.items())},
        "files_with_markup": markup_files,
        "sections": sections,
        "files_with_sections": with_sections,
    }


def compare_with_revision(rows: list, rev: str) -> dict:
    """How many model texts differ from those `tools/preprocess.py` gave at git revision rev."""
    source = subprocess.run(
        ["git", "show", f"{rev}:tools/preprocess.py"], cwd=PROJECT_ROOT,
        capture_output=True, text=True, check=False,
    )
    if source.returncode != 0:
        raise SystemExit(f"error: no tools/preprocess.py at {rev}: {source.stderr.strip()}")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "preprocess_baseline.py"
        path.write_text(source.stdout)
        spec = importlib.util.spec_from_file_location("preprocess_baseline", path)
        if spec is None or spec.loader is None:
            raise SystemExit(f"error: cannot load tools/preprocess.py of {rev} as a module")
        baseline = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = baseline  # pydantic resolves annotations through the module
        spec.loader.exec_module(baseline)
    views: tuple[View, ...] = ("title_and_abstract", "abstract_first", "title_only",
                               "head_and_tail")
    changed, changed_any, explained = [], [], 0
    for row in rows:
        new, old = preprocess(row.title, row.abstract), baseline.preprocess(row.title, row.abstract)
        if model_text(new) != baseline.model_text(old):
            changed.append(row.abstract_id)
            spans_new = {(r.kind, r.start, r.end) for r in new.removed}
            explained += spans_new != {(r.kind, r.start, r.end) for r in old.removed}
        if any(model_text(new, v) != baseline.model_text(old, v) for v in views):
            changed_any.append(row.abstract_id)
    return {
        "revision": rev,
        "abstracts": len(rows),
        "model_text_changed": len(changed),
        "any_view_changed": len(changed_any),
        "changed_with_new_removed_spans": explained,
        "changed_ids": changed,
    }


def _plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    rates = result["throughput"]["per_pass"]
    left.bar(range(1, len(rates) + 1), rates, color="#4C72B0")
    left.axhline(TARGET, color="#C44E52", linestyle="--", label=f"target {TARGET:,.0f}/s")
    left.set_xlabel("pass over the 1000 abstracts")
    left.set_ylabel("abstracts / s (one core)")
    left.set_title(f"Throughput, median {result['throughput']['median']:,.0f}/s")
    left.legend()
    found = {f"metadata: {k}": v for k, v in result["census"]["metadata_items"].items()}
    found |= {f"citation: {k}": v for k, v in result["census"]["citations"].items()}
    names = sorted(found, key=lambda n: found[n])
    right.barh(names, [found[n] for n in names], color="#55A868")
    for y, n in enumerate(names):
        right.text(found[n], y, f" {found[n]}", va="center", fontsize=8)
    right.set_title("What preprocessing removed or normalised (items)")
    right.tick_params(axis="y", labelsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _study_table(by_label: dict[str, dict[str, int]]) -> list[str]:
    labels = list(by_label)
    types = sorted({t for counts in by_label.values() for t in counts},
                   key=lambda t: -sum(c.get(t, 0) for c in by_label.values()))
    return [
        "| study type | " + " | ".join(labels) + " |",
        "|---|" + "---:|" * len(labels),
        *[f"| {t} | " + " | ".join(str(by_label[lab].get(t, 0)) for lab in labels) + " |"
          for t in types],
        "",
    ]


def _markdown(result: dict) -> str:
    t, c = result["throughput"], result["census"]
    lines = [
        "# Preprocessing benchmark",
        "",
        f"`python -m eval.bench_preprocess` on {result['abstracts']} abstracts, "
        f"{t['passes']} passes, {result['cpu']}, {result['pinning']}; "
        f"load average at start {result['load_average_start']}, at end {result['load_average_end']}"
        + (" (another job was running: figures are a lower bound)" if result["busy"] else "")
        + ".",
        "",
        "![benchmark](bench.png)",
        "",
        "| throughput (abstracts/s, one core) | value |",
        "|---|---:|",
        f"| median | {t['median']:,.0f} |",
        f"| best pass | {t['max']:,.0f} |",
        f"| worst pass | {t['min']:,.0f} |",
        f"| target | {TARGET:,.0f} |",
        f"| meets target (median) | {'yes' if t['median'] >= TARGET else 'no'} |",
        "",
        "## Census",
        "",
        "| what | items | files |",
        "|---|---:|---:|",
        *[
            f"| metadata: {k} | {v} | {c['metadata_files'][k]} |"
            for k, v in c["metadata_items"].items()
        ],
        *[f"| citation: {k} | {v} | {c['citation_files'][k]} |" for k, v in c["citations"].items()],
        f"| files with citations | | {c['files_with_citations']} |",
        f"| files with markup removed | | {c['files_with_markup']} |",
        f"| section labels | {c['sections']} | {c['files_with_sections']} |",
        *[f"| status {k} | | {v} |" for k, v in c["statuses"].items()],
        "",
        "## Citation functions (rules) and study types (rules), by gold label",
        "",
        "| citation function | citations |",
        "|---|---:|",
        *[f"| {k} | {v} |" for k, v in c["citation_functions_rules"].items()],
        "",
        *_study_table(c["study_types_by_label"]),
    ]
    if "baseline" in result:
        b = result["baseline"]
        lines += [
            f"## Model text compared with revision `{b['revision']}`",
            "",
            f"{b['model_text_changed']} of {b['abstracts']} model texts (default view) differ; "
            f"{b['any_view_changed']} differ in any view; "
            f"{b['changed_with_new_removed_spans']} of the changed ones differ because a span is "
            "now removed (a citation, new or longer metadata, MathML); IDs in bench.json.",
            "",
        ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--passes", type=int, default=7)
    parser.add_argument("--baseline-rev", help="compare model texts with this git revision")
    parser.add_argument("--out-dir", type=Path, default=OUT_DIR)
    args = parser.parse_args(argv)
    if args.passes < 1:
        print("error: --passes must be at least 1", file=sys.stderr)
        return 2
    rows = [r for r in read_folder(load_settings().data_path() / "abstracts") if not r.error]
    pinning = _pin_one_core()
    load_start = _load_average()
    throughput(rows[:100], 1)  # warm-up: regex compilation caches, imports
    rates = throughput(rows, args.passes)
    load_end = _load_average()
    result: dict[str, Any] = {
        "abstracts": len(rows),
        "cpu": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "pinning": pinning,
        "load_average_start": load_start,
        "load_average_end": load_end,
        "busy": bool(load_start and load_start[0] > 1.5),
        "throughput": {
            "passes": args.passes,
            "per_pass": [round(r, 1) for r in rates],
            "median": round(statistics.median(rates), 1),
            "min": round(min(rates), 1),
            "max": round(max(rates), 1),
            "target": TARGET,
        },
        "census": census(rows),
    }
    if args.baseline_rev:
        result["baseline"] = compare_with_revision(rows, args.baseline_rev)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "bench.json").write_text(json.dumps(result, indent=2) + "\n")
    _plot(result, args.out_dir / "bench.png")
    (args.out_dir / "bench.md").write_text(_markdown(result))
    t = result["throughput"]
    print(f"{t['median']:,.0f} abstracts/s median over {t['passes']} passes "
          f"(target {TARGET:,.0f}); load {load_start} -> {load_end}")
    print(f"wrote {args.out_dir / 'bench.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
