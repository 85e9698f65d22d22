"""The load test end to end on the tiny model: a real uvicorn on loopback, both phases, report."""

from __future__ import annotations

import json

from eval.loadtest import main


def test_loadtest_writes_a_report_and_loses_nothing(light_config, tmp_path):
    args = ["--config", str(light_config), "--single", "3", "--concurrent", "6", "--clients", "4",
            "--max-in-flight", "2", "--max-seconds", "120", "--out", str(tmp_path), "--name", "t"]
    assert main(args) == 0
    result = json.loads((tmp_path / "t.json").read_text())
    single, crowd = result["phases"]
    assert result["model"]["name"] == "tiny-qwen"
    assert single["clients"] == 1 and single["attempt_status_counts"] == {"200": 3}
    assert crowd["clients"] == 4 and crowd["answered_200"] == 6 and crowd["lost"] == 0
    assert crowd["gave_up_at_deadline"] == 0
    assert set(crowd["attempt_status_counts"]) <= {"200", "429"}
    assert crowd["overload_answers_without_retry_after"] == 0
    assert 0 < single["latency_s"]["p50"] <= single["latency_s"]["p95"]
    call = result["classifier_call"]
    assert call["n"] == 3 and 0 < call["p50"] <= call["p95"]
    assert 0 < call["api_p50"] <= call["api_p95"]
    assert call["api_p95_over_call_p95"] == round(call["api_p95"] / call["p95"], 2)
    report = (tmp_path / "t.md").read_text()
    assert "3 abstracts of the 1-client phase, each sent once more" in report
    assert "one classifier call (tiny-qwen, batch 1)" in report
    assert (tmp_path / "t.png").stat().st_size > 0
    assert "| 4 | 6 | 6 | 0 | 0 |" in (tmp_path / "t.md").read_text()
