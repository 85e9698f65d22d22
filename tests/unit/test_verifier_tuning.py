"""The verifier's tuning replays the fused decision's trigger, and its selection rule."""

from __future__ import annotations

import numpy as np
import pytest

from core.labels import Example
from core.settings import load_settings
from eval.decision_data import Rows
from eval.decision_fit import replay_cv
from eval.verifier_tuning import as_settings, choose, setting_scores, write_config
from tools.decision import Call, Evidence, Stage, find_problem

FIRST = ("m", "title_and_abstract", "default")
RUNG = ("minilm", "title_and_abstract", "default")


def two_kinds() -> Rows:
    """5 Cancer rows whose first call is unsure (0.55) but whose title names a cancer concept,
    5 Non-Cancer rows whose first call is sure (0.02) and which name no cancer concept."""
    y = np.array([1] * 5 + [0] * 5)
    first = np.array([0.55] * 5 + [0.02] * 5)
    requery = np.array([0.5] * 5 + [0.02] * 5)
    evidence = [Evidence(Call(*FIRST, float(first[k])), None,
                         ("Lung Cancer",) * int(y[k]), ("Lung Cancer",) * int(y[k]), int(y[k]))
                for k in range(10)]
    return Rows("synthetic", [str(k) for k in range(10)], y, first, requery, RUNG, "m", evidence)


# the fused `first` stage: sure of a cancer concept in the title, unsure of a bare 0.02 call
FUSED = {"first": Stage(3.89, {"first_call": 1.0, "cancer_in_title": 8.0}),
         "full": Stage(0.0, {"first_call": 1.0, "requery": 1.0, "cancer_in_title": 8.0})}
PLAIN = {name: Stage(0.0, {"first_call": 1.0}) for name in ("first", "full")}


def folds(stages: dict[str, Stage]) -> list[tuple[np.ndarray, dict[str, Stage]]]:
    return [(np.array([i, i + 5]), stages) for i in range(5)]


def test_the_tuner_replays_the_fused_trigger_not_a_mean():
    rows = two_kinds()
    # the old policy (mean P at 0.5, threshold 0.6) would ask again on the Cancer rows
    # (mean 0.525) and never on the Non-Cancer ones (0.02, no cancer concept)
    mentions = [{"name": "Lung Cancer", "is_cancer": True}]
    assert find_problem(float(np.mean([0.55, 0.5])), mentions, 0.6) is not None
    assert find_problem(0.02, [], 0.6) is None
    cv = replay_cv(rows, folds(FUSED), target=0.98, confidence=0.6)
    # the fused first stage is sure of the Cancer rows (P 0.9997) and unsure of the others
    # (P 0.5 at the 0.5 operating point): exactly the other way round
    assert cv["threshold"] == 0.5
    np.testing.assert_array_equal(cv["requeried"], cv["y"] == 0)
    fits = [{"variant": "first-call", "C": 1.0, "_fits": folds(PLAIN), "_evidence": None},
            {"variant": "val-only", "C": 1.0, "_fits": folds(FUSED), "_evidence": None}]
    got = setting_scores(rows, fits, 0.6, 0.98, repeats=1)
    assert (got["variant"], got["requery_rate"], got["mean_calls"]) == ("val-only", 0.5, 1.5)
    assert (got["accuracy"], got["recall_cancer"]) == (1.0, 1.0)
    assert got["rung"] == list(RUNG)
    # a tight threshold: the Non-Cancer rows sit at the operating point, still asked
    assert setting_scores(rows, fits, 0.51, 0.98, repeats=1)["requery_rate"] == 0.5


def result(ll: float, calls: float, threshold: float = 0.8, rung: tuple = RUNG,
           se: float = 0.002) -> dict:
    return {"log_loss": ll, "log_loss_se": se, "mean_calls": calls, "threshold": threshold,
            "rung": list(rung)}


def test_selection_rule_ties_within_one_standard_error_go_to_fewer_calls_then_current():
    best = result(0.010, 1.30, 0.9)
    cheaper = result(0.0115, 1.10, 0.7)
    outside = result(0.0125, 1.00, 0.6)  # 0.0125 > 0.010 + 0.002: not a tie
    current = {"threshold": 0.6, "rung": list(RUNG)}
    assert choose([best, cheaper, outside], current) is cheaper
    same_calls_current = result(0.0119, 1.10, 0.6, RUNG)
    assert choose([best, cheaper, outside, same_calls_current], current) is same_calls_current
    # no tie: the lowest log-loss, whatever it costs
    assert choose([result(0.010, 1.3, se=0.0), cheaper], current)["log_loss"] == 0.010
    # equal calls, neither current: the lower log-loss
    other = {"threshold": 0.99, "rung": ["x", "y", "z"]}
    assert choose([best, cheaper, result(0.0105, 1.10, 0.85)], other)["log_loss"] == 0.0105


def test_choice_is_written_into_the_config_keeping_the_rest(tmp_path):
    from core.settings import PROJECT_ROOT

    path = tmp_path / "default.yaml"
    original = (PROJECT_ROOT / "configs" / "default.yaml").read_text()
    path.write_text(original)
    chosen = as_settings(result(0.01, 1.2, 0.9, ("m", "abstract_first", "definition")), "m")
    assert chosen == {"confidence_threshold": 0.9, "max_requeries": 1,
                      "ladder": [{"view": "abstract_first", "prompt": "definition"}]}
    write_config(chosen, path)
    settings = load_settings(path)
    assert settings.verifier.confidence_threshold == 0.9
    assert settings.verifier.max_requeries == 1
    assert [s.model_dump() for s in settings.verifier.ladder] == [
        {"view": "abstract_first", "prompt": "definition", "model": None}]
    changed = [(a, b) for a, b in zip(original.splitlines(), path.read_text().splitlines(),
                                      strict=True) if a != b]
    assert len(changed) == 2  # the threshold and the ladder's rung; comments stay
    assert as_settings(result(0.01, 1.2, 0.7, RUNG), "m")["ladder"] == [
        {"view": "title_and_abstract", "prompt": "default", "model": "minilm"}]


def test_a_prompt_variant_is_cached_apart(tmp_path):
    from eval.compare import predict

    examples = [Example("1", "Lung cancer in smokers", 1), Example("2", "Asthma in children", 0)]
    default = predict("keyword-rule", "finetuned", "x", tmp_path, False, examples=examples)
    other = predict("keyword-rule", "finetuned", "x", tmp_path, False, examples=examples,
                    prompt="definition")
    names = sorted(p.name for p in (tmp_path / "predictions").glob("*.csv"))
    assert names == ["keyword-rule__finetuned__x.csv", "keyword-rule__finetuned__x__definition.csv"]
    assert default["p"] == pytest.approx(other["p"])  # the keyword rule reads no prompt
