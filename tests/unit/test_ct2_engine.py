"""The CTranslate2 int8 engine scores what torch scores, from a cached conversion keyed right."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml

from core.settings import ConfigError, load_model_config
from tools.classifier.calibration import Calibration
from tools.classifier.label_words import PromptEncoder, answer_logits, label_token_ids

ctranslate2 = pytest.importorskip("ctranslate2")

from tools.classifier import ct2_engine  # noqa: E402 - needs ctranslate2

TEXTS = [
    "Title: Tamoxifen in breast cancer\nAbstract: A cohort of 120 women with ER+ tumours.",
    "Title: Asthma\nAbstract: Inhaled steroids.",
    "Title: Long\nAbstract: " + "Patients were followed for outcomes. " * 40,
]


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ONCOGRAPH_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _config(tmp_path, tiny_qwen_dir, **extra):
    path = tmp_path / f"tiny-{len(list(tmp_path.glob('*.yaml')))}.yaml"
    path.write_text(yaml.safe_dump({
        "name": "tiny-qwen", "kind": "causal-lm-label-words", "path": str(tiny_qwen_dir),
        "adapter": None, "max_length": 128, "batch_size": 4, **extra}))
    return load_model_config(str(path))


def _torch_logits(tiny_qwen_dir, texts):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_qwen_dir)
    tokenizer.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(tiny_qwen_dir, dtype=torch.float32).eval()
    with torch.no_grad():
        batch = PromptEncoder(tokenizer, 128).encode(texts)
        return answer_logits(model, batch, label_token_ids(tokenizer)).numpy()


def test_float32_conversion_gives_torchs_two_label_logits(tmp_path, tiny_qwen_dir, cache):
    cfg = _config(tmp_path, tiny_qwen_dir, backend="ctranslate2", ct2_compute_type="float32")
    scorer = ct2_engine.Ct2LabelWordClassifier(cfg, use_adapter=False)
    ids = scorer.token_ids(TEXTS)
    assert len({len(row) for row in ids}) == 3, "rows of different lengths, unpadded"
    got = scorer.answer_logits(ids)
    assert got.shape == (3, 2)
    np.testing.assert_allclose(got, _torch_logits(tiny_qwen_dir, TEXTS), rtol=1e-3, atol=1e-4)
    # the same row alone and beside longer ones: no padding leaks into its score
    np.testing.assert_allclose(scorer.answer_logits(ids[1:2])[0], got[1], rtol=1e-5, atol=1e-6)


def test_int8_scores_stay_close_to_torch(tmp_path, tiny_qwen_dir, cache):
    cfg = _config(tmp_path, tiny_qwen_dir, backend="ctranslate2")
    scorer = ct2_engine.Ct2LabelWordClassifier(cfg, use_adapter=False)
    ref = torch.softmax(torch.from_numpy(_torch_logits(tiny_qwen_dir, TEXTS)), -1)[:, 0].numpy()
    p = scorer.predict_proba(TEXTS)
    assert np.abs(p - ref).max() < 0.02
    assert not np.allclose(p, ref, atol=1e-7), "int8 must not be the float path in disguise"


def test_conversion_is_cached_and_keyed_by_adapter_version(tmp_path, tiny_qwen_dir, cache,
                                                           monkeypatch):
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "training.json").write_text(json.dumps({"version": "v1"}))
    cfg = _config(tmp_path, tiny_qwen_dir, adapter=str(adapter))
    ids = [9454, 2753]
    base = str(tiny_qwen_dir)
    key_v1 = ct2_engine.conversion_key(cfg, base, True, ids)
    assert key_v1["adapter_version"] == "v1"
    assert ct2_engine.conversion_key(cfg, base, False, ids)["adapter_version"] is None
    (adapter / "training.json").write_text(json.dumps({"version": "v2"}))
    key_v2 = ct2_engine.conversion_key(cfg, base, True, ids)
    assert ct2_engine.cache_folder(cfg.name, key_v1) != ct2_engine.cache_folder(cfg.name, key_v2)
    assert key_v1["base"] == key_v2["base"] and len(key_v1["base"]) == 64

    baseline = _config(tmp_path, tiny_qwen_dir)
    first = ct2_engine.converted_model(baseline, base, False, ids)
    assert json.loads((first / "oncograph.json").read_text())["label_ids"] == ids

    def no_reconversion(*args, **kwargs):
        raise AssertionError("a cached conversion was converted again")

    monkeypatch.setattr(ct2_engine, "convert", no_reconversion)
    assert ct2_engine.converted_model(baseline, base, False, ids) == first


def test_a_missing_adapter_is_a_clear_error(tmp_path, tiny_qwen_dir, cache):
    cfg = _config(tmp_path, tiny_qwen_dir, adapter=str(tmp_path / "none"), backend="ctranslate2")
    with pytest.raises(FileNotFoundError, match="adapter for tiny-qwen not found"):
        ct2_engine.Ct2LabelWordClassifier(cfg)


def test_registry_serves_the_configured_backend_and_records_it(tmp_path, tiny_qwen_dir, cache):
    from tools.classifier.registry import get_classifier

    cfg = _config(tmp_path, tiny_qwen_dir, backend="ctranslate2")
    path = str(next(tmp_path.glob("*.yaml")))
    clf = get_classifier(path, "baseline")
    assert clf.info.backend == "ctranslate2"
    assert isinstance(clf.scorer, ct2_engine.Ct2LabelWordClassifier)
    torch_clf = get_classifier(path, "baseline", "torch")
    assert torch_clf.info.backend == "torch"
    p, ref = clf.predict_proba(TEXTS[:2]), torch_clf.predict_proba(TEXTS[:2])
    assert np.abs(p - ref).max() < 0.02
    assert cfg.backend == "ctranslate2"


def test_an_unknown_backend_is_a_config_error(tmp_path, tiny_qwen_dir):
    with pytest.raises(ConfigError, match="backend"):
        _config(tmp_path, tiny_qwen_dir, backend="onnx")


def test_calibration_prefers_the_backends_own_fit(tmp_path):
    Calibration(1.0, -2.0, "val", 100).save(tmp_path)
    assert Calibration.load(tmp_path, "ctranslate2").fitted_on == "val"  # falls back to torch's
    Calibration(0.9, -1.5, "val/ctranslate2", 100).save(tmp_path, "ctranslate2")
    assert Calibration.load(tmp_path, "ctranslate2").fitted_on == "val/ctranslate2"
    assert Calibration.load(tmp_path).fitted_on == "val"


def test_ceiling_weight_count_matches_the_model(tiny_qwen_dir):
    from transformers import AutoConfig, AutoModelForCausalLM

    from eval.bench_classifier import decoder_linear_weights

    model = AutoModelForCausalLM.from_pretrained(tiny_qwen_dir)
    counted = sum(m.weight.numel() for m in model.get_decoder().modules()
                  if isinstance(m, torch.nn.Linear))
    assert decoder_linear_weights(AutoConfig.from_pretrained(tiny_qwen_dir)) == counted
