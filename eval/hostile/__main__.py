"""python -m eval.hostile [--only SUBSTRING] [--name hostile] -> reports/trust/<name>.{json,md}

`scripts/hostile_baseline.sh REF` runs the same cases against an older commit
(reports/trust/hostile-baseline.*), to show what the sweep catches there."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from core.settings import PROJECT_ROOT
from eval.hostile import all_cases, run_case
from eval.hostile.harness import Harness

REPORT_DIR = PROJECT_ROOT / "reports" / "trust"


FAILURE_KINDS = (  # first match wins; the detail strings come from eval/hostile/harness.py
    ("traceback or 500", ("Traceback", "exit 99", "HTTP 500", "ran past")),
    ("lost, split, swapped or mixed records", ("rows gave", "appears twice", "was given",
                                                ": label", "IDs collide", "swapped",
                                                "given IDs changed", "records for one ID")),
    ("text or offsets not as the contract says", ("the record does not carry it", ": text ",
                                                   ": offsets ")),
    ("accepted what it should refuse", ("expected non-zero", "status 'ok', expected 'error",
                                        "HTTP 200, expected")),
)


def failure_kind(detail: str) -> str:
    return next((kind for kind, needles in FAILURE_KINDS if any(n in detail for n in needles)),
                "other")


def write_report(results: list[dict], seconds: float, folder: Path = REPORT_DIR,
                 name: str = "hostile", label: str = "this tree") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    by_surface = Counter(r["surface"] for r in results)
    failed = [r for r in results if not r["passed"]]
    summary: dict[str, Any] = {
        "cases": len(results), "passed": len(results) - len(failed), "failed": len(failed),
        "by_surface": dict(by_surface),
        "by_outcome": dict(Counter(r["outcome"] for r in results)),
        "failures_by_kind": dict(Counter(failure_kind(r["detail"]) for r in failed)),
        "seconds": round(seconds, 1), "load_average": os.getloadavg(),
        "model": "keyword-rule", "disease_routes": ["dictionary"], "code": label,
    }
    (folder / f"{name}.json").write_text(json.dumps({"summary": summary, "cases": results},
                                                    indent=2, ensure_ascii=False) + "\n")
    lines = [
        f"# Hostile-input sweep: {label}",
        "",
        "`python -m eval.hostile` (`make hostile`): every case runs against the real CLI "
        "(in-process `graph.run.main`), the API (FastAPI TestClient, models loaded) and the "
        "stream workers (a throw-away redis-server), with the keyword-rule classifier and the "
        "dictionary disease route. A case passes only when its expected outcome happened and "
        "every check held: a **record** has its ID, order, status, label, text and offsets "
        "right (offsets index the record's `text` when the input contract changed the text, "
        "else the input as given); a **row_status** is an error status on that row only, its "
        "neighbours intact; an **error_line** is one `error:` line with a non-zero exit (or a "
        "4xx with a short body) and no traceback.",
        "",
        f"**{summary['passed']} of {summary['cases']} cases pass** "
        f"({', '.join(f'{k} {v}' for k, v in sorted(by_surface.items()))}); "
        f"{summary['failed']} fail. Wall time {summary['seconds']} s, load average "
        f"{', '.join(f'{x:.2f}' for x in summary['load_average'])}.",
        *(["Failures by kind (from their detail line): "
           + "; ".join(f"{k}: {v}" for k, v in summary["failures_by_kind"].items()) + ".", ""]
          if failed else []),
        "| case | expected | outcome | pass | detail |",
        "|---|---|---|---|---|",
    ]
    for r in results:
        detail = r["detail"].replace("|", "\\|").replace("\n", " ")[:220]
        lines.append(f"| `{r['case']}` | {r['expected']} | {r['outcome']} | "
                     f"{'yes' if r['passed'] else '**NO**'} | {detail} |")
    path = folder / f"{name}.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m eval.hostile", description=__doc__)
    parser.add_argument("--only", help="run only cases whose name contains this")
    parser.add_argument("--name", default="hostile", help="report file name under --report-dir")
    parser.add_argument("--report-dir", type=Path, default=REPORT_DIR)
    parser.add_argument("--label", default="this tree", help="which code ran, for the report")
    args = parser.parse_args(argv)
    # a SIGTERM still stops the throw-away redis-server (the context manager's finally runs)
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    from eval.bench_serving import local_redis

    cases = [c for c in all_cases() if not args.only or args.only in c.name]
    start = time.perf_counter()
    with local_redis() as url, tempfile.TemporaryDirectory() as tmp:
        harness = Harness(Path(tmp), url)
        try:
            results = []
            for case in cases:
                results.append(run_case(harness, case))
                mark = "ok  " if results[-1]["passed"] else "FAIL"
                print(f"{mark} {case.name}: {results[-1]['detail'][:150]}", file=sys.stderr)
        finally:
            harness.close()
    path = write_report(results, time.perf_counter() - start, args.report_dir, args.name,
                        args.label)
    failed = sum(not r["passed"] for r in results)
    print(f"{len(results) - failed}/{len(results)} cases pass; report: {path}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
