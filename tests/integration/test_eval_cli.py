"""The benchmark and comparison CLIs: reports written, bad input answered in one line."""

from __future__ import annotations

import json

import pytest

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


def test_disease_eval_and_rule_sweep_write_reports(tmp_path):
    """The committed NER adapter on three dev abstracts per corpus: real models, real scoring."""
    from eval import disease_rules, diseases

    diseases.main(["--routes", "dictionary", "combined", "--limit", "3", "--out", str(tmp_path),
                   "--min-model-score", "0.9", "--min-dictionary-support", "0.1"])
    report = json.loads((tmp_path / "metrics.json").read_text())
    assert "model spans need mean P(disease) >= 0.9" in report["rule"]
    assert set(report["results"]["ncbi_dev"]) == {"dictionary", "combined"}
    assert "Merge rule: priority dictionary > model" in (tmp_path / "README.md").read_text()

    with pytest.raises(SystemExit, match="3 documents cannot fill 5 folds"):
        disease_rules.main(["--limit", "3", "--out", str(tmp_path)])
    disease_rules.main(["--limit", "3", "--folds", "3", "--repeats", "2", "--out", str(tmp_path)])
    rules = json.loads((tmp_path / "rules.json").read_text())
    assert len(rules["rows"]) == len(disease_rules.grid())
    assert rules["best"]["mean_exact_f1"] == max(r["mean_exact_f1"] for r in rules["rows"])
    cv = rules["cross_validated"]
    assert len(cv["per_repeat"]) == 2 and set(cv["f1"]) == {"ncbi_dev", "bc5cdr_dev"}
    assert sum(r["folds"] for r in cv["rules_chosen_in_folds"]) == 3 * 2
    assert (tmp_path / "rules.png").stat().st_size > 0 and (tmp_path / "rules.md").exists()


def test_bench_of_a_causal_lm_writes_its_compute_ceiling(tmp_path, tiny_qwen_dir):
    import yaml

    model_yaml = tmp_path / "tiny-qwen.yaml"
    model_yaml.write_text(yaml.safe_dump({"name": "tiny-qwen", "kind": "causal-lm-label-words",
                                          "path": str(tiny_qwen_dir), "max_length": 128}))
    rc = bench_classifier.main(["--model", str(model_yaml), "--variant", "baseline", "--n", "4",
                                "--batch-sizes", "2", "--out", str(tmp_path)])
    assert rc == 0
    ceiling = json.loads((tmp_path / "throughput_tiny-qwen.json").read_text())["ceiling"]
    # 2 layers of q, k, v, o (hidden 32, 2 of 4 heads for k and v) and gate, up, down (x64)
    assert ceiling["decoder_linear_weights"] == 2 * (2 * 32 * 32 + 2 * 32 * 16 + 3 * 32 * 64)
    gflop = 2 * ceiling["decoder_linear_weights"] * ceiling["mean_tokens"] / 1e9
    assert ceiling["gemm_gflops_bf16"] > 0
    assert abs(ceiling["abstracts_per_s"] / (ceiling["gemm_gflops_bf16"] / gflop) - 1) < 0.01
    assert "Compute ceiling on this machine" in (tmp_path / "throughput_tiny-qwen.md").read_text()
