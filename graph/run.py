"""OncoGraph command line: abstracts in, one JSON record per abstract out.

    python -m graph.run --input abstracts.csv [--output results.jsonl] [--config FILE]
                        [--model NAME] [--limit N]

Rerunning with the same --output resumes: rows already written are skipped and rows whose
record is an error are retried. The output knows what wrote it (`<output>.meta.json`: model,
adapter version, config hash); a resume under another model or config is refused unless
`--force`, which starts the output afresh (the old one kept as `<output>.bak`). One writer
per output: a second run on it is refused while the first holds `<output>.lock`.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from collections import Counter
from contextlib import ExitStack
from pathlib import Path

from core.contract import dumps_record
from core.io import InputError, InputRow, iter_jsonl, prepare_resume, read_input
from core.settings import PROJECT_ROOT, ConfigError, Settings, available_models, load_settings
from graph.logs import configure_logging
from graph.run_meta import OutputError, claim_output, run_meta

CHUNK = 32  # rows per graph.batch call: progress and durability granularity


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m graph.run",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--input", required=True,
                        help="CSV, JSONL, a .txt abstract or a folder of them")
    parser.add_argument("--output", help="JSONL file (default: outputs/<input name>.jsonl)")
    parser.add_argument("--config", help="YAML merged over configs/default.yaml")
    parser.add_argument("--model", help=f"classifier: one of {', '.join(available_models())}")
    parser.add_argument("--limit", type=_count, help="only the first N input rows")
    parser.add_argument("--force", action="store_true",
                        help="resume even under another model/config: start the output afresh")
    parser.add_argument("--no-checkpoint", action="store_true", help="skip the SQLite checkpointer")
    parser.add_argument("--no-report", action="store_true", help="skip the run report")
    parser.add_argument("--report-dir",
                        help="where <name>.report.md/.json/.png go (default: beside --output)")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="also show library logs and warnings (always in <output>.log)")
    return parser


def _count(value: str) -> int:
    n = int(value)
    if n < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {n}")
    return n


def summarise_run(records: list[dict], seconds: float, processed: int) -> str:
    labels = Counter(r["predicted_labels"][0] for r in records if r.get("predicted_labels"))
    statuses = Counter(r["status"] if not r["status"].startswith("error") else "error"
                       for r in records)
    # P of the label given (the operating point may put it below 0.5)
    confidences = [r["confidence_scores"][r["predicted_labels"][0]] for r in records
                   if r.get("confidence_scores") and r.get("predicted_labels")]
    requeried = sum(1 for r in records if (r.get("verifier") or {}).get("attempts", 0) > 1)
    lines = [
        "── OncoGraph run summary ─────────────────────",
        f"rows in output      {len(records)}  (processed now: {processed})",
        *[f"label {k:<13} {v}" for k, v in sorted(labels.items())],
        f"mean confidence     {sum(confidences) / len(confidences):.3f}" if confidences
        else "mean confidence     -",
        *[f"status {k:<12} {v}" for k, v in sorted(statuses.items())],
        f"re-queried          {requeried}",
        f"throughput          {processed / seconds:.2f} abstracts/s" if processed and seconds > 0
        else "throughput          -",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    output = Path(args.output or PROJECT_ROOT / "outputs" / f"{Path(args.input).stem}.jsonl")
    with ExitStack() as stack:
        try:
            settings = load_settings(args.config,
                                     classifier={"model": args.model} if args.model else None)
            rows = read_input(args.input)
            # before any model loads: refused outputs, the lock, the sidecar check
            stack.enter_context(claim_output(output, Path(args.input), run_meta(settings),
                                             args.force))
            configure_logging(output.with_suffix(".log"), args.verbose)
            done, retried = prepare_resume(output)
        except (ConfigError, InputError, OutputError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        if args.limit is not None:
            rows = rows[: args.limit]
        return _process(args, settings, rows, output, done, retried, stack)


def _process(
    args: argparse.Namespace, settings: Settings, rows: list[InputRow], output: Path,
    done: set[str], retried: int, stack: ExitStack,
) -> int:
    todo = [r for r in rows if r.abstract_id not in done]
    if done or retried:
        retrying = f"; retrying {retried} error or cut record(s)" if retried else ""
        print(f"resuming: {len(rows) - len(todo)} of {len(rows)} rows already in {output}"
              f"{retrying}", file=sys.stderr)

    from tqdm import tqdm

    from graph.pipeline import Pipeline

    processed = 0
    checkpointer = None
    if not args.no_checkpoint:
        from langgraph.checkpoint.sqlite import SqliteSaver

        db = Path(settings.run.checkpoint_db)
        db = db if db.is_absolute() else PROJECT_ROOT / db
        db.parent.mkdir(parents=True, exist_ok=True)
        checkpointer = stack.enter_context(SqliteSaver.from_conn_string(str(db)))
    pipeline = Pipeline(settings, checkpointer)
    if todo:
        pipeline.warm_up()  # load every model once, before the worker threads start
    start = time.perf_counter()  # throughput counts processing, not model loading
    # unique per run: two runs started in the same second never share checkpoint threads
    run_id = f"{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}"
    bar = stack.enter_context(tqdm(total=len(todo), unit="abstract", file=sys.stderr, disable=None))
    out = stack.enter_context(output.open("a", encoding="utf-8"))
    try:
        for i in range(0, len(todo), CHUNK):
            chunk = todo[i : i + CHUNK]
            for record in pipeline.process(chunk, run_id=run_id):
                out.write(dumps_record(record) + "\n")
            out.flush()
            os.fsync(out.fileno())
            processed += len(chunk)
            bar.update(len(chunk))
    except KeyboardInterrupt:
        print(f"\ninterrupted: {processed} rows written; rerun the same command to resume",
              file=sys.stderr)
        return 130
    seconds = time.perf_counter() - start
    records = list(iter_jsonl(output))
    print(summarise_run(records, seconds, processed), file=sys.stderr)
    if not args.no_report and records:
        from graph.run_report import write_run_report

        report = write_run_report(records, f"{output.stem}.report",
                                  Path(args.report_dir) if args.report_dir else output.parent)
        print(f"report: {report}", file=sys.stderr)
    print(f"output: {output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
