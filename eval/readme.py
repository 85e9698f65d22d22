"""Copy the committed reports' tables and a real output record into README.md.

    python -m eval.readme [--example outputs/example.jsonl]

README figures are never typed by hand: each block between `<!-- BEGIN x -->` and
`<!-- END x -->` is regenerated from reports/ (and the example run's output).
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

from core.settings import PROJECT_ROOT

README = PROJECT_ROOT / "README.md"
REPORTS = PROJECT_ROOT / "reports"

# (title, report file, heading of an extra section to copy or None)
SECTIONS = [
    ("Classification: fine-tuned vs zero-shot on the fixed test split",
     "classification/comparison.md", "Verdicts"),
    ("Cost and speed of each classifier", "classification/comparison.md#Cost", None),
    ("Float type: emulated bf16 or fp32 on this CPU (torch models, one run)",
     "classification/dtype.md", None),
    ("Inference backends: torch vs the ctranslate2 int8 engine (1.5B, one run)",
     "classification/backends_qwen2.5-1.5b.md#Speed (val abstracts, raw scores)",
     "Agreement with torch on the 200 test abstracts (calibrated, each backend with its own "
     "val-fitted map)"),
    ("Where the classifiers' test errors come from",
     "classification/audit.md#Errors by category", None),
    ("The whole graph against the compute ceiling (one run per backend)",
     "classification/graph_ceiling.md", None),
    ("The verifier on the test split (whole graph)", "verifier/README.md", None),
    ("The fused Cancer decision on the test split", "decision/test.md",
     "Targets (graph: fused decision)"),
    ("Out-of-domain check: NCBI Disease dev + BC5CDR dev (a report, not a choice)",
     "decision/ood.md", None),
    ("Disease extraction on NCBI Disease dev and BC5CDR dev", "diseases/README.md", None),
    ("NER engines for the default disease route: torch vs ctranslate2 int8 (one run)",
     "diseases/engines.md", None),
    ("Scheduling the int8 NER engine: one window per call or two at once (one run)",
     "diseases/speed.md", None),
    ("The disease merge rule, cross-validated on dev documents", "diseases/rules.md", None),
    ("Where the disease route's dev errors come from", "diseases/audit.md", None),
    ("Disease concepts: the rules against the concept chooser (dev)",
     "diseases/normaliser.md#Dev sets (default route, configured merge rule)", None),
    ("Hostile input: CLI, API and stream workers", "trust/hostile.md#lead", None),
    ("Citation analysis: the LLM against the rules", "citations/llm.md#Cost", None),
    ("Preprocessing speed", "preprocessing/bench.md", None),
    ("Serving", "serving/loadtest.md", "Against one classifier call"),
    ("Stream workers vs CLI batch throughput (keyword-rule model: serving overhead at its worst)",
     "serving/throughput-keyword-rule.md", None),
]


def tables(text: str) -> list[str]:
    """Every Markdown table in a text, in order."""
    found, current = [], []
    for line in text.splitlines():
        if line.startswith("|"):
            current.append(line)
        elif current:
            found.append("\n".join(current))
            current = []
    if current:
        found.append("\n".join(current))
    return found


def section(text: str, heading: str) -> str:
    """The body of a `## heading` section."""
    match = re.search(rf"^##+ {re.escape(heading)}\s*\n(.*?)(?=^##+ |\Z)", text, re.S | re.M)
    return match.group(1).strip() if match else ""


def results_block() -> str:
    parts = []
    for title, ref, extra in SECTIONS:
        rel, _, heading = ref.partition("#")
        path = REPORTS / rel
        if not path.exists():
            parts.append(f"### {title}\n\nNot measured yet: `{rel}` is missing.")
            continue
        text = path.read_text()
        block = [f"### {title}", "", f"From [`reports/{rel}`](reports/{rel}).", ""]
        if heading == "lead":  # a report whose verdict is its bold summary line, not a table
            block += [line for line in text.splitlines() if line.startswith("**")][:1]
            parts.append("\n".join(block))
            continue
        body = section(text, heading) if heading else text
        found = tables(body)
        # a table when the section has one, else its first paragraph (prose figures)
        block.append(found[0] if found else body.split("\n\n")[0])
        if extra and (more := section(text, extra)):
            block += ["", more]
        parts.append("\n".join(block))
    return "\n\n".join(parts)


def example_block(path: Path) -> str:
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    record = next((r for r in records if r["status"] == "ok" and r["disease_mentions"]), records[0])
    shown = dict(record)
    for key in ("disease_mentions",):
        if len(shown[key]) > 3:
            shown[key] = shown[key][:3] + [f"... {len(record[key]) - 3} more"]
    shown["verifier"] = {k: v for k, v in (record.get("verifier") or {}).items() if k != "history"}
    if record.get("verifier"):
        attempts = len(record["verifier"]["history"])
        shown["verifier"]["history"] = f"{attempts} attempt(s), omitted here"
    return (
        f"A record from `make run` (`{path.relative_to(PROJECT_ROOT)}`; long lists shortened):\n\n"
        "```json\n" + json.dumps(shown, indent=2, ensure_ascii=False) + "\n```"
    )


def replace_block(text: str, name: str, body: str) -> str:
    pattern = re.compile(rf"(<!-- BEGIN {name} -->\n).*?(<!-- END {name} -->)", re.S)
    if not pattern.search(text):
        raise SystemExit(f"README.md has no BEGIN/END {name} markers")
    return pattern.sub(lambda m: m.group(1) + body + "\n" + m.group(2), text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--example", default=str(PROJECT_ROOT / "outputs" / "example.jsonl"))
    args = parser.parse_args(argv)
    text = replace_block(README.read_text(), "results", results_block())
    example = Path(args.example)
    if example.exists():
        text = replace_block(text, "example", example_block(example))
    else:
        print(f"no {example}; run `make run` first to refresh the example record")
    README.write_text(text)
    print(f"updated {README}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
