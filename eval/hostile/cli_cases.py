"""Hostile cases for `python -m graph.run`: every payload in every file format, hostile IDs and
types, and the run-level hazards (resume, a second writer, output = input, unwritable output)."""

from __future__ import annotations

import json
from pathlib import Path

from core.contract import generated_id
from eval.hostile.harness import (
    GOOD_AFTER,
    GOOD_BEFORE,
    Case,
    Harness,
    Outcome,
    Row,
    check,
    check_error_line,
    check_records,
)
from eval.hostile.payloads import PAYLOADS, WRITERS, hostile_row, read_output, write_jsonl


def _run_rows(h: Harness, name: str, rows: list[Row], writer: str, given_ids: bool = True,
              extra: tuple[str, ...] = ()) -> tuple[Path, str]:
    folder = h.folder(name)
    source = WRITERS[writer](folder, rows)
    out = folder / "out.jsonl"
    code, err = h.run(["--input", str(source), "--output", str(out), *extra])
    check(code == 0 and "Traceback" not in err, f"exit {code}: {err.strip()[-300:]}")
    return out, check_records(read_output(out), rows, given_ids)


def payload_case(payload: str, writer: str) -> Case:
    row = hostile_row(payload)

    def run(h: Harness) -> Outcome:
        _, detail = _run_rows(h, f"cli-{writer}-{payload}", [GOOD_BEFORE, row, GOOD_AFTER], writer)
        return Outcome("row_status" if row.status.startswith("error") else "record", True, detail)

    kind = "row_status" if row.status.startswith("error") else "record"
    return Case(f"cli/{writer}/{payload}", "cli",
                f"{payload} between two good rows, written by {writer}", kind, run)


def _rows_case(name: str, description: str, rows: list[Row], writer: str = "jsonl",
               given_ids: bool = True) -> Case:
    kind = "row_status" if any(r.status.startswith("error") for r in rows) else "record"

    def run(h: Harness) -> Outcome:
        _, detail = _run_rows(h, name, [GOOD_BEFORE, *rows, GOOD_AFTER], writer, given_ids)
        return Outcome(kind, True, detail)

    return Case(f"cli/{name}", "cli", description, kind, run)


def _id_surrogate(h: Harness) -> Outcome:
    out, detail = _run_rows(h, "id-surrogate", [GOOD_BEFORE, Row("a\ud800b", "Melanoma", "x"),
                                                 GOOD_AFTER], "jsonl", given_ids=False)
    record = read_output(out)[1]
    check(record["abstract_id"] == "a\ufffdb", f"ID {record['abstract_id']!r}")
    check(any("surrogate" in n for n in record["notes"]), f"no note: {record['notes']}")
    return Outcome("record", True, f"ID written as 'a\\ufffdb' with a note; {detail}")


def _generated_ids(h: Harness) -> Outcome:
    """A given ID equal to another row's content hash, and two rows of identical text."""
    taken = generated_id("Melanoma", "Same text.")
    rows = [GOOD_BEFORE, Row(taken, "Asthma", "Inhaled steroids.", label="Non-Cancer"),
            Row(None, "Melanoma", "Same text.", label="Cancer"),
            Row(None, "Melanoma", "Same text.", label="Cancer"), GOOD_AFTER]
    out, detail = _run_rows(h, "generated-ids", rows, "csv-module", given_ids=True)
    ids = [r["abstract_id"] for r in read_output(out)]
    check(ids[1] == taken and ids[2] == f"{taken}-2" and ids[3] == f"{taken}-3", f"IDs {ids}")
    return Outcome("record", True, f"IDs {ids[1:4]}; {detail}")


def _malformed_csv(extra: bool) -> Case:
    def run(h: Harness) -> Outcome:
        folder = h.folder("csv-width")
        source = folder / "in.csv"
        bad = "2,Melanoma,x,surplus" if extra else "2,Melanoma"
        source.write_text(f"pmid,title,abstract\n1,Lung cancer,NSCLC.\n{bad}\n3,Asthma,Steroids.\n")
        out = folder / "out.jsonl"
        code, err = h.run(["--input", str(source), "--output", str(out)])
        check(code == 0, f"exit {code}: {err[-200:]}")
        rows = [Row("1", "Lung cancer", "NSCLC.", label="Cancer"),
                Row("2", "", "", "error: malformed row"),
                Row("3", "Asthma", "Steroids.", label="Non-Cancer")]
        return Outcome("row_status", True, check_records(read_output(out), rows))

    name = "csv-extra-field" if extra else "csv-missing-field"
    return Case(f"cli/{name}", "cli", f"a CSV row with {'more' if extra else 'fewer'} fields "
                "than the header", "row_status", run)


def _first_run(h: Harness, name: str) -> tuple[Path, Path, list[Row]]:
    rows = [GOOD_BEFORE, hostile_row("markup", "m1"), GOOD_AFTER]
    folder = h.folder(name)
    source = write_jsonl(folder, rows)
    out = folder / "out.jsonl"
    code, err = h.run(["--input", str(source), "--output", str(out)])
    check(code == 0, f"first run: exit {code}: {err[-200:]}")
    return source, out, rows


def _resume_retries_errors(h: Harness) -> Outcome:
    source, out, rows = _first_run(h, "resume-errors")
    records = read_output(out)
    records[1] = {**records[1], "status": "error: RuntimeError: simulated model crash"}
    out.write_text("".join(json.dumps(r) + "\n" for r in records) + '{"abstract_id": "cut')
    code, err = h.run(["--input", str(source), "--output", str(out)])
    check(code == 0 and "retrying 2" in err, f"exit {code}: {err[-300:]}")
    again = read_output(out)
    check(sorted(r["abstract_id"] for r in again) == sorted(r.id for r in rows), "IDs differ")
    check(all(r["status"] == "ok" for r in again), f"statuses {[r['status'] for r in again]}")
    return Outcome("record", True, "the error record and the cut line were redone: 3 ok records")


def _resume_refused(other: str) -> Case:
    def run(h: Harness) -> Outcome:
        source, out, _ = _first_run(h, f"resume-{other}")
        before = out.read_bytes()
        if other == "model":
            code, err = h.cli(["--input", str(source), "--output", str(out), "--model", "minilm",
                               "--no-report"])
        elif other == "config":
            config = h.write_config({**_light_other()}, "other")
            code, err = h.cli(["--input", str(source), "--output", str(out), "--config",
                               str(config), "--no-report"])
        else:  # no sidecar: the model that wrote it is unknown
            out.with_name(out.name + ".meta.json").unlink()
            code, err = h.run(["--input", str(source), "--output", str(out)])
        detail = check_error_line(code, err, "--force")
        check(out.read_bytes() == before, "the refused run changed the output")
        return Outcome("error_line", True, detail)

    return Case(f"cli/resume-other-{other}", "cli", f"resume under another {other} is refused",
                "error_line", run)


def _light_other() -> dict:
    from eval.hostile.harness import LIGHT_CONFIG

    return {**LIGHT_CONFIG, "verifier": {**LIGHT_CONFIG["verifier"], "confidence_threshold": 0.7}}


def _resume_force(h: Harness) -> Outcome:
    source, out, rows = _first_run(h, "resume-force")
    config = h.write_config(_light_other(), "other-force")
    code, err = h.cli(["--input", str(source), "--output", str(out), "--config", str(config),
                       "--no-report", "--force"])
    check(code == 0 and "--force" in err, f"exit {code}: {err[-200:]}")
    check(out.with_name(out.name + ".bak").exists(), "no .bak of the old output")
    meta = json.loads(out.with_name(out.name + ".meta.json").read_text())
    from core.settings import load_settings
    from graph.run_meta import run_meta

    check(meta["config_hash"] == run_meta(load_settings(config))["config_hash"], "stale sidecar")
    return Outcome("record", True, check_records(read_output(out), rows))


def _second_writer(h: Harness) -> Outcome:
    from core.settings import load_settings
    from graph.run_meta import claim_output, run_meta

    folder = h.folder("second-writer")
    source = write_jsonl(folder, [GOOD_BEFORE])
    out = folder / "out.jsonl"
    with claim_output(out, source, run_meta(load_settings(h.config)), force=False):
        code, err = h.run(["--input", str(source), "--output", str(out)])
    detail = check_error_line(code, err, "another run")
    return Outcome("error_line", True, detail)


def _error_case(name: str, description: str, needle: str, setup) -> Case:
    def run(h: Harness) -> Outcome:
        folder = h.folder(name)
        code, err = h.run(setup(folder))  # the keyword-rule config: nothing heavy loads
        return Outcome("error_line", True, check_error_line(code, err, needle))

    return Case(f"cli/{name}", "cli", description, "error_line", run)


def _csv(folder: Path, text: str | bytes, name: str = "in.csv") -> str:
    path = folder / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return str(path)


def _unwritable(folder: Path) -> list[str]:
    (folder / "file").write_text("x")
    return ["--input", _csv(folder, "pmid,title,abstract\n1,t,a\n"), "--output",
            str(folder / "file" / "out.jsonl")]


def _output_is_input(folder: Path) -> list[str]:
    source = _csv(folder, "pmid,title,abstract\n1,t,a\n")
    return ["--input", source, "--output", str(Path(source).parent / "." / "in.csv")]


def cases() -> list[Case]:
    found = [payload_case(p, w) for w in WRITERS for p in PAYLOADS]
    melanoma = ("Melanoma", "Nivolumab for melanoma.")
    one_row = "pmid,title,abstract\n1,t,a\n"
    found += [
        Case("cli/id-lone-surrogate", "cli", "a lone surrogate (JSON escape) in an ID", "record",
             _id_surrogate),
        _rows_case("id-line-break", "an ID holding a newline",
                   [Row("a\nb", *melanoma, "error: abstract_id")]),
        _rows_case("id-u2028-pandas", "an ID holding U+2028, written unquoted by pandas",
                   [Row("a\u2028b", *melanoma, "error: abstract_id")], writer="pandas-csv"),
        _rows_case("id-integer", "a JSON integer ID", [Row(12345, *melanoma, label="Cancer")],
                   given_ids=False),
        _rows_case("id-float", "a JSON float ID",
                   [Row(1.5, *melanoma, "error: abstract_id is not text")], given_ids=False),
        _rows_case("id-object", "a JSON object as ID",
                   [Row({"a": 1}, *melanoma, "error: abstract_id is not text")], given_ids=False),
        _rows_case("id-too-long", "a 201-character ID",
                   [Row("i" * 201, *melanoma, "error: abstract_id too long")]),
        _rows_case("id-duplicate", "a repeated ID",
                   [Row("good-before", *melanoma, "error: duplicate")]),
        _rows_case("id-padded", "an ID with surrounding spaces",
                   [Row("  p7  ", *melanoma, label="Cancer")]),
        _rows_case("title-number", "a number as title",
                   [Row("t1", 42, "Melanoma.", "error: title is not text")]),
        _rows_case("abstract-list", "a list as abstract",
                   [Row("t2", "Melanoma", ["x"], "error: abstract is not text")]),
        _rows_case("abstract-null", "a null abstract",
                   [Row("t3", "Melanoma", None, "no_abstract")]),
        _rows_case("ids-missing", "rows without IDs get distinct generated IDs",
                   [Row(None, "Melanoma", "x", label="Cancer"),
                    Row(None, "Asthma", "y", label="Non-Cancer")],
                   writer="pandas-csv"),
        Case("cli/generated-id-collisions", "cli", "a given ID equal to a generated one, and two "
             "rows of identical text without IDs", "record", _generated_ids),
        _malformed_csv(extra=True),
        _malformed_csv(extra=False),
        Case("cli/resume-retries-errors", "cli", "a resume redoes error records and a cut line",
             "record", _resume_retries_errors),
        _resume_refused("model"),
        _resume_refused("config"),
        _resume_refused("sidecar"),
        Case("cli/resume-force", "cli", "--force restarts an output under another config",
             "record", _resume_force),
        Case("cli/second-writer", "cli", "a second run on an output that another run holds",
             "error_line", _second_writer),
        _error_case("output-is-input", "--output resolving to the input file", "is the input",
                    _output_is_input),
        _error_case("output-unwritable", "--output under a path that is a file", "cannot write",
                    _unwritable),
        _error_case("output-is-folder", "--output naming a folder", "is a folder",
                    lambda f: ["--input", _csv(f, one_row), "--output", str(f)]),
        _error_case("limit-negative", "--limit -1", "--limit",
                    lambda f: ["--input", _csv(f, one_row), "--limit", "-1"]),
        _error_case("input-latin1", "a Latin-1 file", "not valid UTF-8",
                    lambda f: ["--input",
                               _csv(f, "pmid,title,abstract\n1,caf\xe9,x\n".encode("latin-1"))]),
        _error_case("input-missing", "an input path that does not exist", "input not found",
                    lambda f: ["--input", str(f / "nope.csv")]),
        _error_case("input-header-only", "a CSV with a header and no rows", "no rows",
                    lambda f: ["--input", _csv(f, "pmid,title,abstract\n")]),
        _error_case("jsonl-not-object", "a JSONL line that is an array", "not a JSON object",
                    lambda f: ["--input", _csv(f, '["a"]\n', "in.jsonl")]),
        _error_case("unknown-model", "--model that does not exist", "unknown model",
                    lambda f: ["--input", _csv(f, one_row), "--model", "gpt-99"]),
    ]
    return found
