"""eval.verifier_effect's report: the test split's README and the OOD check's own files."""

from __future__ import annotations

import json

import pytest

from eval.verifier_effect import analyse, write_report

pytestmark = pytest.mark.unit


def _record(abstract_id: str, first: float, final: str, p: float) -> dict:
    history = [{"p_cancer": first, "reason": "first call"}]
    if (first >= 0.5) != (final == "Cancer"):
        history.append({"p_cancer": p, "reason": "fused P(Cancer) inside the confidence band"})
    return {"abstract_id": abstract_id, "predicted_labels": [final],
            "confidence_scores": {"Cancer": p, "Non-Cancer": 1 - p},
            "verifier": {"history": history},
            "decision": {"threshold": 0.4, "explanation": "why"}}


def test_the_ood_report_has_its_own_files_and_counts_fixes(tmp_path):
    records = [_record("ncbi_dev:1", 0.2, "Cancer", 0.7),   # fixed by the verifier
               _record("bc5cdr_dev:2", 0.9, "Cancer", 0.9),
               _record("bc5cdr_dev:3", 0.1, "Non-Cancer", 0.1)]
    gold = {"ncbi_dev:1": "Cancer", "bc5cdr_dev:2": "Non-Cancer", "bc5cdr_dev:3": "Non-Cancer"}
    result = analyse(records, gold)
    assert result["fixed_by_verifier"] == ["ncbi_dev:1"] and result["broken_by_verifier"] == []
    assert result["first_call_accuracy"] == pytest.approx(1 / 3)
    assert result["final_accuracy"] == pytest.approx(2 / 3)
    meta = {"set": "out-of-domain dev check", "generated": "now", "model": "m", "threshold": 0.6,
            "max_requeries": 1, "ladder": [], "abstracts_per_s": 1.0, "threads": 2,
            "load_before": 0.5, "command": "python -m eval.verifier_effect --ood"}
    path = write_report(result, meta, tmp_path, name="ood")
    assert path == tmp_path / "ood.md" and not (tmp_path / "README.md").exists()
    assert "# Verifier effect on the out-of-domain dev check" in path.read_text()
    saved = json.loads((tmp_path / "ood.json").read_text())
    assert [r["threshold"] for r in saved["rows"]] == [0.4, 0.4, 0.4]
    assert (tmp_path / "ood.png").stat().st_size > 0
