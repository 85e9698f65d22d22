"""The fused decision: fitting on synthetic evidence, the operating point, the record block."""

from __future__ import annotations

import json

import jsonschema
import numpy as np
import pytest

from core.schema import SCHEMA_PATH, AbstractRecord
from core.settings import load_settings
from eval.decision_data import Rows
from eval.decision_fit import cross_validate, fit_stages
from tools.decision import (
    Call,
    DecisionModel,
    Evidence,
    Stage,
    choose_threshold,
    explain,
    find_problem,
)

FIRST = ("m", "title_and_abstract", "default")
REQUERY = ("minilm", "title_and_abstract", "default")


def synthetic_rows(n: int = 200, seed: int = 0) -> Rows:
    """A classifier right ~90% of the time, often confidently wrong on Cancer abstracts whose
    title names a cancer concept; the disease evidence is informative but noisy."""
    rng = np.random.default_rng(seed)
    y = (np.arange(n) % 2).astype(int)
    title = (y == 1) & (rng.random(n) < 0.7) | (y == 0) & (rng.random(n) < 0.1)
    concepts = np.where(title, 1 + rng.integers(0, 3, n), (rng.random(n) < 0.3) * 1)
    wrong = rng.random(n) < 0.12
    first = np.where(y == 1, 0.97, 0.03)
    first = np.where(wrong, 1 - first, first)
    requery = np.clip(np.where(y == 1, 0.9, 0.1) + rng.normal(0, 0.15, n), 0.01, 0.99)
    evidence = [
        Evidence(Call(*FIRST, float(first[k])), None,
                 tuple(f"Concept {j}" for j in range(int(concepts[k]))),
                 ("Concept 0",) if title[k] and concepts[k] else (), int(concepts[k]) * 2)
        for k in range(n)
    ]
    return Rows("synthetic", [str(k) for k in range(n)], y, first, requery, REQUERY, "m", evidence)


def test_confident_wrong_call_plus_cancer_concepts_gives_cancer():
    rows = synthetic_rows()
    stages = fit_stages(rows, np.arange(len(rows.y)), "val-only", 1.0, None)
    assert stages["full"].coef["cancer_in_title"] > 0
    assert stages["full"].coef["requery"] > 0
    model = DecisionModel("m", list(REQUERY), stages,
                          {"p_cancer": [0.2, 0.6, 0.9, 0.1], "label": [1, 1, 1, 0]},
                          "synthetic", "t")
    hormones = Evidence(Call(*FIRST, 0.007), Call(*REQUERY, 0.991), ("Breast Cancer",),
                        ("Breast Cancer",), 3)
    decision = model.decide(hormones, target_recall=0.98)
    assert decision.label == "Cancer"
    assert decision.model.endswith("stage full")
    by_feature = {c.feature: c for c in decision.contributions}
    assert by_feature["first_call"].contribution < 0 < by_feature["cancer_in_title"].contribution
    total = decision.intercept + sum(c.contribution for c in decision.contributions)
    assert decision.p_cancer == pytest.approx(1 / (1 + np.exp(-total)), abs=1e-3)
    assert decision.explanation.startswith("Cancer: m 0.01, re-query minilm 0.99; 1 cancer "
                                           "concept, one in the title (Breast Cancer)")
    # the same call without the evidence stays Non-Cancer: the evidence made the difference
    bare = Evidence(Call(*FIRST, 0.007), Call(*REQUERY, 0.3))
    assert model.decide(bare, 0.98).label == "Non-Cancer"


def test_a_requery_the_model_was_not_fitted_with_is_not_used():
    stages = {"first": Stage(0.0, {"first_call": 1.0}),
              "full": Stage(0.0, {"first_call": 1.0, "requery": 5.0})}
    model = DecisionModel("m", list(REQUERY), stages, {"p_cancer": [0.5], "label": [1]}, "", "t")
    other = Evidence(Call(*FIRST, 0.2), Call("m", "abstract_first", "definition", 0.99))
    decision = model.decide(other, 0.98)
    assert decision.model.endswith("stage first")
    assert "not used" in decision.explanation


def test_operating_point_is_the_largest_threshold_reaching_the_target():
    p = [0.05, 0.2, 0.4, 0.7, 0.9] * 10 + [0.01] * 50  # 50 Cancer, then 50 Non-Cancer
    y = [1] * 50 + [0] * 50
    assert choose_threshold(p, y, 0.98) == 0.05  # 1 miss allowed of 50, 10 sit at 0.05
    assert choose_threshold(p, y, 0.8) == 0.2  # 10 misses allowed
    assert choose_threshold(p, y, 0.5) == 0.4  # 25 allowed: 0.4, capped at 0.5 anyway
    assert choose_threshold([0.9, 0.95, 0.1], [1, 1, 0], 0.5) == 0.5  # never above 0.5
    with pytest.raises(ValueError):
        choose_threshold([0.3], [0], 0.9)


def test_operating_point_on_held_out_folds_reaches_the_target():
    rows = synthetic_rows(300, seed=1)
    cv = cross_validate(rows, "val-only", 1.0, 0.95, 0.6, repeats=2, evidence=None)
    assert len(cv["p"]) == 2 * len(rows.y)
    recall = ((cv["p"] >= cv["threshold"]) & (cv["y"] == 1)).sum() / (cv["y"] == 1).sum()
    assert recall >= 0.95
    assert cv["threshold"] <= 0.5


def test_trigger_is_relative_to_the_operating_point():
    cancer = [{"name": "Lung Cancer", "is_cancer": True}]
    assert find_problem(0.5, cancer, 0.6) is not None  # unsure at the plain 0.5 line
    assert find_problem(0.9, cancer, 0.6) is None
    # at a 0.2 operating point, 0.25 is Cancer and within the band (logit 0.25 - logit 0.2 < 0.41)
    assert "confidence band" in find_problem(0.25, cancer, 0.6, cut=0.2)
    assert find_problem(0.6, cancer, 0.6, cut=0.2) is None
    assert "no cancer concept" in find_problem(0.6, [], 0.6, cut=0.2)
    assert "cancer concepts were found" in find_problem(0.05, cancer, 0.6, cut=0.2)


def test_explanation_reads_like_a_curator_line():
    e = Evidence(Call(*FIRST, 0.97), None, ("Breast Cancer", "Cancer"), ("Breast Cancer",), 4)
    assert explain("Cancer", e) == ("Cancer: m 0.97; 2 cancer concepts, one in the title "
                                    "(Breast Cancer)")
    assert explain("Non-Cancer", Evidence(Call(*FIRST, 0.02))) == (
        "Non-Cancer: m 0.02; no cancer concept found")


def test_decision_block_is_in_the_exported_schema():
    schema = json.loads(SCHEMA_PATH.read_text())
    assert schema == AbstractRecord.model_json_schema(), "run `make schema`"
    assert "Decision" in schema["$defs"] and "Contribution" in schema["$defs"]
    e = Evidence(Call(*FIRST, 0.007), Call(*REQUERY, 0.991), ("Breast Cancer",),
                 ("Breast Cancer",), 1)
    stages = {"first": Stage(-1.0, {"first_call": 0.5, "cancer_in_title": 3.0}),
              "full": Stage(-1.0, {"first_call": 0.5, "requery": 0.5, "cancer_in_title": 3.0})}
    model = DecisionModel("m", list(REQUERY), stages, {"p_cancer": [0.3, 0.1], "label": [1, 0]},
                          "", "t")
    record = AbstractRecord(abstract_id="1", status="ok", decision=model.decide(e, 0.98))
    data = record.model_dump(mode="json")
    jsonschema.validate(data, schema)
    data["decision"]["contributions"][0]["contribution"] = "a lot"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(data, schema)


def test_model_file_round_trips(tmp_path):
    stages = {"first": Stage(-0.5, {"first_call": 0.8}), "full": Stage(-0.4, {"first_call": 0.7,
                                                                              "requery": 0.3})}
    model = DecisionModel("m", list(REQUERY), stages, {"p_cancer": [0.3, 0.8], "label": [1, 1]},
                          "val n=2", "v1", {"C": 1.0})
    model.save(tmp_path / "m.json")
    back = DecisionModel.load(tmp_path / "m.json")
    assert back == model
    assert back.threshold(0.98) == 0.3


def _write_tiny_decision(folder, requery_call: list[str]) -> None:
    stages = {"first": Stage(0.0, {"first_call": 1.0, "cancer_in_title": 2.0}),
              "full": Stage(0.0, {"first_call": 0.5, "requery": 0.5, "cancer_in_title": 2.0})}
    DecisionModel("tiny-qwen", requery_call, stages,
                  {"p_cancer": [0.2, 0.4, 0.9, 0.1], "label": [1, 1, 1, 0]}, "test", "t1"
                  ).save(folder / "tiny-qwen.json")


def test_graph_with_a_tiny_model_writes_a_decision_block(light_config, tmp_path):
    from graph.builder import compile_graph

    settings = load_settings(light_config)
    call = [settings.classifier.model, "abstract_first", "definition"]
    _write_tiny_decision(tmp_path, call)
    settings = load_settings(light_config, decision={"path": str(tmp_path)})
    state = {"abstract_id": "t1", "title": "Breast cancer risk and hormones",
             "abstract": "Hormones and the risk of breast cancer were studied in 400 women."}
    record = compile_graph().invoke(state, {"configurable": {"settings": settings}})["record"]
    jsonschema.validate(record, json.loads(SCHEMA_PATH.read_text()))
    decision = record["decision"]
    assert decision["model"].startswith("decision t1 (test)")
    assert decision["threshold"] == pytest.approx(0.2)
    assert record["predicted_labels"] == [decision["label"]]
    assert record["confidence_scores"]["Cancer"] == pytest.approx(decision["p_cancer"])
    title = next(c for c in decision["contributions"] if c["feature"] == "cancer_in_title")
    assert title["contribution"] == pytest.approx(2.0) and "Breast Cancer" in title["detail"]
    assert decision["explanation"].startswith(decision["label"])


def test_graph_without_a_fitted_decision_says_so(light_config, tmp_path):
    from graph.builder import compile_graph

    settings = load_settings(light_config, decision={"path": str(tmp_path)})
    state = {"abstract_id": "t2", "title": "Asthma in children",
             "abstract": "We studied 40 children."}
    record = compile_graph().invoke(state, {"configurable": {"settings": settings}})["record"]
    assert record["decision"]["model"].startswith("none: no fitted decision for tiny-qwen")
    assert record["decision"]["threshold"] == 0.5
