"""Corpus-level breakdown of one run's output records, written at the end of every run.

    python -m graph.run_report outputs/example.jsonl   # or called by graph.run

Label counts, top diseases, cancer types (mentions whose concept is a neoplasm), study types,
citation counts and removed metadata, as Markdown + JSON + one bar-chart PNG under
reports/run/. Records are AbstractRecord dicts (core/schema.py); fields a record lacks are
counted as missing, never guessed.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from pathlib import Path

TOP = 15
_STUDY_PREFIX = re.compile(r"^(?P<type>[A-Z][a-z /-]+(?:study|trial|report|series|review|analysis|"
                           r"research|consensus)) on \"")


def _study_type(record: dict) -> str:
    """The record's study type; the extractive summary starts with it ("Case report on ...")."""
    if record.get("study_type"):
        return str(record["study_type"])
    match = _STUDY_PREFIX.match(record.get("summary") or "")
    return match.group("type").lower() if match else "unknown"


def breakdown(records: list[dict]) -> dict:
    """The counts the report shows, as plain data (also written as JSON)."""
    labels: Counter[str] = Counter()
    statuses: Counter[str] = Counter()
    diseases: Counter[str] = Counter()
    cancers: Counter[str] = Counter()
    study_types: Counter[str] = Counter()
    citation_kinds: Counter[str] = Counter()
    identifier_kinds: Counter[str] = Counter()
    metadata_kinds: Counter[str] = Counter()
    with_citations = total_citations = 0
    for record in records:
        status = str(record.get("status", "unknown"))
        statuses["error" if status.startswith("error") else status] += 1
        predicted = record.get("predicted_labels") or []
        labels[predicted[0] if predicted else "none"] += 1
        diseases.update(dict.fromkeys(record.get("extracted_diseases") or [], 1))
        cancer_names = {
            m.get("name") or m.get("text")
            for m in record.get("disease_mentions") or []
            if m.get("is_cancer")
        }
        cancers.update(sorted(n for n in cancer_names if n))  # a set: sorted, so ties rank stably
        study_types[_study_type(record)] += 1
        citations = record.get("citations") or {}
        count = int(citations.get("count") or 0)
        total_citations += count
        with_citations += count > 0
        citation_kinds.update(citations.get("by_kind") or {})
        for kind, values in (citations.get("identifiers") or {}).items():
            identifier_kinds[kind] += len(values)
        for kind, values in (record.get("metadata") or {}).items():
            metadata_kinds[kind] += len(values)
    return {
        "records": len(records),
        "labels": dict(labels.most_common()),
        "statuses": dict(statuses.most_common()),
        "top_diseases": dict(diseases.most_common(TOP)),
        "cancer_types": dict(cancers.most_common(TOP)),
        "study_types": dict(study_types.most_common()),
        "citations": {
            "total": total_citations,
            "abstracts_with_citations": with_citations,
            "by_kind": dict(citation_kinds.most_common()),
            "identifiers": dict(identifier_kinds.most_common()),
        },
        "metadata": dict(metadata_kinds.most_common()),
    }


def _table(title: str, counts: dict, total: int | None = None, key: str = "value") -> list[str]:
    lines = [f"### {title}", ""]
    if not counts:
        return [*lines, "none", ""]
    lines.append(f"| {key} | count |" + (" share |" if total else ""))
    lines.append("|---|---:|" + ("---:|" if total else ""))
    for name, n in counts.items():
        share = f" {100 * n / total:.1f}% |" if total else ""
        lines.append(f"| {name} | {n} |{share}")
    return [*lines, ""]


def _markdown(name: str, data: dict, png: Path) -> str:
    n = data["records"]
    cites = data["citations"]
    lines = [
        f"# Run report: {name}",
        "",
        f"{n} records. Written by `graph/run_report.py` from the run's output records.",
        "",
        f"![breakdown]({png.name})",
        "",
        *_table("Predicted labels", data["labels"], n, "label"),
        *_table("Record status", data["statuses"], n, "status"),
        *_table("Study types (rule-based)", data["study_types"], n, "study type"),
        *_table(f"Top {TOP} diseases (abstracts mentioning)", data["top_diseases"], n, "disease"),
        *_table(f"Top {TOP} cancer types", data["cancer_types"], n, "cancer"),
        "### Citations",
        "",
        f"{cites['total']} citations in {cites['abstracts_with_citations']} of {n} abstracts.",
        "",
        *_table("Citations by kind", cites["by_kind"], key="kind"),
        *_table("Cited identifiers", cites["identifiers"], key="identifier"),
        *_table("Removed metadata", data["metadata"], key="kind"),
    ]
    return "\n".join(lines)


def _plot(data: dict, path: Path, name: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [
        ("Predicted labels", data["labels"]),
        ("Study types", data["study_types"]),
        ("Top cancer types", dict(list(data["cancer_types"].items())[:10])),
        ("Citations by kind", data["citations"]["by_kind"]),
    ]
    fig, axes = plt.subplots(2, 2, figsize=(12, 8))
    for ax, (title, counts) in zip(axes.flat, panels, strict=True):
        names, values = list(counts)[::-1], list(counts.values())[::-1]
        ax.barh(names or ["none"], values or [0], color="#4C72B0")
        ax.set_title(title)
        ax.tick_params(axis="y", labelsize=8)
        for y, v in enumerate(values):
            ax.text(v, y, f" {v}", va="center", fontsize=8)
    fig.suptitle(f"Run {name}: {data['records']} abstracts")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_run_report(records: list[dict], name: str, out_dir: Path = Path("reports/run")) -> Path:
    """Write <name>.md, <name>.json and <name>.png under out_dir; returns the Markdown path."""
    if not re.fullmatch(r"[\w.-]+", name):
        name = re.sub(r"[^\w.-]+", "_", name).strip("_") or "run"
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    data = breakdown(records)
    png = out_dir / f"{name}.png"
    _plot(data, png, name)
    (out_dir / f"{name}.json").write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    md = out_dir / f"{name}.md"
    md.write_text(_markdown(name, data, png) + "\n")
    return md


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("records", type=Path, help="a run's output JSONL")
    parser.add_argument("--name", help="report name (default: the file's stem)")
    parser.add_argument("--out-dir", type=Path, default=Path("reports/run"))
    args = parser.parse_args(argv)
    if not args.records.is_file():
        print(f"error: {args.records} is not a file", file=sys.stderr)
        return 2
    records = []
    for n, line in enumerate(args.records.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as exc:
                print(f"error: {args.records}:{n}: not JSON ({exc.msg})", file=sys.stderr)
                return 2
    print(write_run_report(records, args.name or args.records.stem, args.out_dir))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
