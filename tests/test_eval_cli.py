"""The benchmark and comparison CLIs: reports written, bad input answered in one line."""

from __future__ import annotations

import json

from eval import bench_classifier, compare


def test_bench_writes_json_and_markdown(tmp_path):
    rc = bench_classifier.main(["--model", "keyword-rule", "--n", "8", "--out", str(tmp_path)])
    assert rc == 0
    report = json.loads((tmp_path / "throughput_keyword-rule.json").read_text())
    assert report["n"] == 8 and report["results"][0]["abstracts_per_s"] > 0
    assert "| batch size |" in (tmp_path / "throughput_keyword-rule.md").read_text()


def test_unknown_model_is_one_line_error(tmp_path, capsys):
    assert compare.main(["--models", "nope", "--out", str(tmp_path)]) == 1
    assert bench_classifier.main(["--model", "nope", "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.count("error: unknown model 'nope'") == 2 and "Traceback" not in err
