"""The engine comparison's sample never takes a test abstract, and its adoption rule refuses
an int8 engine that parses less, drifts from torch or is not faster."""

from __future__ import annotations

from eval.citations_engines import ADOPTION, pick, summarise, verdict


def _row(i: int, torch_fns: list[str] | None, int8_fns: list[str] | None, rules: list[str],
         torch_s: float = 10.0, int8_s: float = 4.0) -> dict:
    def side(fns, seconds):
        return {"seconds": seconds, "answered": fns is not None, "functions": fns or rules,
                "summary": "s", "fallback": "" if fns is not None else "no JSON"}

    return {"source": "ncbi_train", "id": str(i), "n_citations": len(rules), "rules": rules,
            "torch": side(torch_fns, torch_s), "ctranslate2": side(int8_fns, int8_s)}


def test_pick_skips_the_corpus_test_split_and_mixes_sources():
    found = [("corpus", "t1", None), ("corpus", "a", None), ("ncbi_train", "n1", None),
             ("ncbi_train", "n2", None), ("bc5cdr_train", "b1", None)]
    chosen = pick(found, 4, {"t1"})
    assert [(s, i) for s, i, _ in chosen] == [("bc5cdr_train", "b1"), ("corpus", "a"),
                                             ("ncbi_train", "n1"), ("ncbi_train", "n2")]


def test_an_int8_engine_that_agrees_and_is_faster_is_adopted():
    rows = [_row(i, ["background", "method"], ["background", "method"],
                 ["background", "contrast"]) for i in range(4)]
    summary = summarise(rows)
    assert summary["speedup"] == 2.5
    assert summary["int8_vs_torch"]["agreement"] == 1.0
    assert summary["engines"]["torch"]["vs_rules"]["agreement"] == 0.5
    assert verdict(summary)["adopt_int8"]


def test_each_line_of_the_rule_can_refuse_int8():
    fns, rules = ["background", "method"], ["background", "method"]
    fewer = [_row(0, fns, None, rules), _row(1, fns, fns, rules)]
    assert not verdict(summarise(fewer))["checks"]["parses_at_least_as_often"]
    drift = [_row(i, fns, ["comparison", "comparison"], rules) for i in range(3)]
    checks = verdict(summarise(drift))["checks"]
    assert not checks["rules_agreement_margin"] and not checks["torch_agreement_floor"]
    slow = [_row(i, fns, fns, rules, torch_s=10.0, int8_s=10.0 / (ADOPTION["min_speedup"] - 0.1))
            for i in range(2)]
    assert verdict(summarise(slow))["checks"] == {
        "parses_at_least_as_often": True, "rules_agreement_margin": True,
        "torch_agreement_floor": True, "min_speedup": False}
