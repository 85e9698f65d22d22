"""The adoption rule of eval.bench_backends, applied to made-up figures, and its report."""

from __future__ import annotations

import pytest

from eval.bench_backends import adopt, write


def _rows(torch_rate: float, ct2_rate: float) -> list[dict]:
    return [{"backend": b, "batch_size": bs, "seconds": 1.0, "abstracts_per_s": r,
             "share_of_bf16_ceiling": r}
            for bs in (1, 8) for b, r in (("torch", torch_rate), ("ctranslate2", ct2_rate))]


def _table(agree: float, auc: float) -> dict:
    def row(a: float, u: float) -> dict:
        ci = {"value": u, "ci95": [u - 0.01, u]}
        return {"n": 200, "calibration": None, "decision_agreement": a, "max_abs_dp": 0.1,
                "mean_abs_dp": 0.01, "max_abs_dp_raw": 0.1, "mean_abs_dp_raw": 0.01,
                "abstracts_per_s_200": None, "accuracy": ci, "recall": ci, "auc": ci}

    return {"torch": row(1.0, 0.990), "ctranslate2": row(agree, auc)}


@pytest.mark.parametrize(("agree", "auc", "split", "default"), [
    (0.995, 0.988, "test", "ctranslate2"),  # on both bounds
    (0.990, 0.990, "test", "torch"),  # two abstracts of 200 decided otherwise
    (1.000, 0.987, "test", "torch"),  # AUC 0.003 lower
    (1.000, 0.990, "val", "torch"),  # never adopted on val figures
])
def test_the_fastest_backend_is_adopted_only_when_it_agrees_on_test(agree, auc, split, default):
    got = adopt("qwen2.5-1.5b", _rows(0.5, 0.7), _table(agree, auc), split)
    assert got["fastest"] == "ctranslate2" and got["speedup_vs_torch"] == 1.4
    assert got["default"] == default and got["passes"] == (default == "ctranslate2")


def test_torch_stays_when_it_is_the_fastest():
    assert adopt("qwen2.5-1.5b", _rows(0.7, 0.5), _table(1.0, 0.99))["default"] == "torch"


def test_report_files(tmp_path):
    ceiling = {"abstracts_per_s": 0.6, "gemm_gflops_bf16": 400.0, "gflop_per_abstract": 600.0,
               "mean_tokens": 240.0}
    report = {"model": "m.5b", "backends": ["torch", "ctranslate2"], "command": "c", "when": "now",
              "threads": 2, "cpu_count": 2,
              "speed": {"n": 8, "rows": _rows(0.5, 0.7), "load_s": {"torch": 1, "ctranslate2": 2},
                        "load_average_1m": 1.0, "load_average_1m_after": 1.0,
                        "ceiling_before": ceiling, "ceiling_after": ceiling,
                        "ceiling_abstracts_per_s": 0.6},
              "agreement": _table(1.0, 0.99),
              "adoption": adopt("qwen2.5-1.5b", _rows(0.5, 0.7), _table(1.0, 0.99))}
    md = write(report, tmp_path).read_text()
    assert (tmp_path / "backends_m.5b.json").exists()
    assert "**ctranslate2** is the default" in md and "Adoption rule" in md
    assert (tmp_path / "backends_m.5b.png").stat().st_size > 0
