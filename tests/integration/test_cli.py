"""The CLI end to end on the tiny random Qwen: formats, bad input, resume, schema."""

from __future__ import annotations

import json
import subprocess
import sys

import jsonschema
import pytest

from core.schema import SCHEMA_PATH, AbstractRecord
from graph.run import main

ABSTRACT = ("Non-small cell lung cancer (NSCLC) <i>in vivo</i> models. "
            "Copyright   2016 Wiley Periodicals, Inc.")


def write_csv(path, rows):
    import csv

    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["pmid", "title", "abstract"])
        writer.writerows(rows)
    return path


def read_records(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def schema():
    return json.loads(SCHEMA_PATH.read_text())


def test_committed_schema_matches_the_record_model(schema):
    assert schema == AbstractRecord.model_json_schema()


def test_run_writes_one_valid_record_per_row_in_order(tmp_path, light_config, schema, capsys):
    rows = [("1", "Lung cancer", ABSTRACT), ("2", "Asthma in children", "Asthma is common."),
            ("3", "Title only", "")]
    out = tmp_path / "out.jsonl"
    assert main(["--input", str(write_csv(tmp_path / "in.csv", rows)), "--output", str(out),
                 "--config", str(light_config), "--no-report"]) == 0
    records = read_records(out)
    assert [r["abstract_id"] for r in records] == ["1", "2", "3"]
    for record in records:
        jsonschema.validate(record, schema)
        assert sum(record["confidence_scores"].values()) == pytest.approx(1.0)
    first = records[0]
    assert first["status"] == "ok" and first["model"]["name"] == "tiny-qwen"
    assert first["metadata"]["copyright"]
    for mention in first["disease_mentions"]:  # offsets index the ORIGINAL text
        source = ABSTRACT if mention["field"] == "abstract" else "Lung cancer"
        assert source[mention["start"] : mention["end"]] == mention["text"]
    assert records[2]["status"] == "no_abstract"
    assert "run summary" in capsys.readouterr().err


def test_bad_rows_get_a_status_and_do_not_stop_the_run(tmp_path, light_config):
    rows = [("1", "t", "Asthma."), ("1", "t", "dup"), ("2", "", ""), ("3", "t", "x" * 1_000_001),
            ("4", "t", "Gout.")]
    out = tmp_path / "out.jsonl"
    assert main(["--input", str(write_csv(tmp_path / "in.csv", rows)), "--output", str(out),
                 "--config", str(light_config), "--no-report"]) == 0
    statuses = [r["status"] for r in read_records(out)]
    assert statuses[0] == "ok" and statuses[4] == "ok"
    assert statuses[1].startswith("error: duplicate abstract_id")
    assert statuses[2].startswith("error: empty row")
    assert statuses[3].startswith("error: abstract too long")


def test_resume_skips_rows_already_written(tmp_path, light_config, capsys):
    rows = [(str(i), f"Title {i}", f"Abstract number {i} about asthma.") for i in range(5)]
    source = write_csv(tmp_path / "in.csv", rows)
    out = tmp_path / "out.jsonl"
    args = ["--input", str(source), "--output", str(out), "--config", str(light_config),
            "--no-report"]
    assert main([*args, "--limit", "2"]) == 0
    first_two = out.read_text()
    with out.open("a") as fh:  # a crash left half a line behind
        fh.write('{"abstract_id": "2", "stat')
    capsys.readouterr()
    assert main(args) == 0
    assert "resuming: 2 of 5" in capsys.readouterr().err
    assert out.read_text().startswith(first_two)
    assert [r["abstract_id"] for r in read_records(out)] == ["0", "1", "2", "3", "4"]


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "input not found"), (b"pmid,title,text2\n1,a,b\n", "no abstract column"),
     (b"pmid,title,abstract\n1,caf\xe9,x\n", "not valid UTF-8")],
)
def test_bad_input_files_give_one_clear_line(tmp_path, content, message, capsys):
    path = tmp_path / "in.csv"
    if content is not None:
        path.write_bytes(content)
    assert main(["--input", str(path), "--output", str(tmp_path / "o.jsonl")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err


def test_unknown_model_is_a_clear_error(tmp_path, capsys):
    path = write_csv(tmp_path / "in.csv", [("1", "t", "a")])
    assert main(["--input", str(path), "--model", "gpt-99"]) == 2
    assert "unknown model 'gpt-99'" in capsys.readouterr().err


def test_module_entry_point_reports_errors_without_traceback(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "graph.run", "--input", str(tmp_path / "missing.csv")],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"error: input not found: {tmp_path / 'missing.csv'}"


def test_a_run_shows_only_its_summary_and_writes_its_report_beside_the_output(tmp_path):
    """Load reports, progress bars and library warnings go to <output>.log, not the screen;
    the run report lands beside the output, never in the source tree."""
    config = tmp_path / "ner.yaml"
    # the torch NER engine: loading its base prints a transformers load report (the int8
    # engine, once converted, loads without one)
    config.write_text("classifier: {model: keyword-rule}\n"
                      "diseases: {routes: [dictionary, model], model_backend: torch}\n")
    source = write_csv(tmp_path / "in.csv", [("1", "Lung cancer", ABSTRACT)])
    out = tmp_path / "out" / "res.jsonl"
    proc = subprocess.run(
        [sys.executable, "-m", "graph.run", "--input", str(source), "--output", str(out),
         "--config", str(config), "--no-checkpoint"],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    shown = [line for line in proc.stderr.splitlines() if line.strip()]
    assert shown[0].startswith("── OncoGraph run summary")
    assert all(not any(w in line for w in ("Warning", "LOAD REPORT", "Traceback", "it/s]"))
               for line in shown), shown
    assert "LOAD REPORT" in (out.parent / "res.log").read_text()  # the NER base, logged
    assert {p.name for p in out.parent.iterdir()} >= {"res.report.md", "res.report.json",
                                                      "res.report.png"}
