"""The CTranslate2 NER engine on a tiny random-weight BERT + LoRA (real MiniLM tokenizer):
its window scores against the torch path's, its cache key, and the backend setting."""

from __future__ import annotations

from typing import get_args

import numpy as np
import pytest

from core.settings import ConfigError, DiseaseSettings, load_settings
from tools.diseases import ct2_ner
from tools.diseases.model import BACKENDS, load_ner, model_scores
from tools.diseases.ner import LABELS, combine, sorted_windows, torch_window_probs

TEXTS = ["Lung cancer and asthma were seen in two patients with cystic fibrosis.",
         "Type IID von Willebrand disease. " * 70,  # > 512 tokens: two windows
         ""]


def _both(tiny_ner, quantization: str):
    adapter, base = tiny_ner
    model, tokenizer = load_ner(str(adapter), str(base))
    folder = ct2_ner.converted_model(adapter, base, quantization)
    engine = ct2_ner.Ct2TokenClassifier(folder, compute_type=quantization, threads=1)
    wins = sorted_windows(tokenizer, TEXTS)
    return wins, torch_window_probs(model, tokenizer.pad_token_id, wins), engine.window_probs(wins)


def test_float32_conversion_gives_the_torch_probabilities(tiny_ner, tmp_path, monkeypatch):
    monkeypatch.setenv("ONCOGRAPH_CACHE", str(tmp_path))
    wins, ref, got = _both(tiny_ner, "float32")
    assert len(wins) == 4  # one, two (the long text) and one (the empty text: [CLS] [SEP])
    for r, g in zip(ref, got, strict=True):
        assert g.shape == r.shape and g.shape[1] == len(LABELS)
        np.testing.assert_allclose(g, r, atol=1e-4)  # merged LoRA, head, positions all right
    a, b = combine(wins, ref, len(TEXTS)), combine(wins, got, len(TEXTS))
    assert [s.offsets for s in a] == [s.offsets for s in b] and a[2].offsets == []
    assert [s.labels for s in a] == [s.labels for s in b]


def test_int8_engine_keeps_the_structure_and_roughly_the_scores(tiny_ner, tmp_path, monkeypatch):
    monkeypatch.setenv("ONCOGRAPH_CACHE", str(tmp_path))
    wins, ref, got = _both(tiny_ner, "int8")
    for r, g in zip(ref, got, strict=True):
        assert g.shape == r.shape
        np.testing.assert_allclose(g.sum(-1), 1.0, atol=1e-5)
        assert np.abs(g - r).max() < 0.15  # quantised, not a different model
    a, b = combine(wins, ref, len(TEXTS)), combine(wins, got, len(TEXTS))
    assert [s.offsets for s in a] == [s.offsets for s in b]
    same = sum(x == y for s, t in zip(a, b, strict=True) for x, y in zip(s.labels, t.labels,
                                                                          strict=True))
    assert same / sum(len(s.labels) for s in a) > 0.9


def test_conversion_is_cached_and_keyed_by_adapter_and_quantization(tiny_ner, tmp_path,
                                                                     monkeypatch):
    import shutil

    monkeypatch.setenv("ONCOGRAPH_CACHE", str(tmp_path))
    adapter, base = tiny_ner
    first = ct2_ner.converted_model(adapter, base, "int8")
    assert first.parent == tmp_path / "ct2" and (first / "model.bin").exists()

    def no_conversion(*args, **kwargs):
        raise AssertionError("converted again")

    monkeypatch.setattr(ct2_ner, "convert", no_conversion)
    assert ct2_ner.converted_model(adapter, base, "int8") == first  # reused
    other = tmp_path / "retrained"
    shutil.copytree(adapter, other)
    weights = other / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-1] + b"\x00")
    key = ct2_ner.conversion_key(adapter, base, "int8")
    assert ct2_ner.cache_folder(ct2_ner.conversion_key(other, base, "int8")) != first
    assert ct2_ner.cache_folder(ct2_ner.conversion_key(adapter, base, "float32")) != first
    assert ct2_ner.cache_folder(key) == first
    (first / "oncograph.json").write_text('{"stale": true}')  # a half-written or old folder
    with pytest.raises(AssertionError, match="converted again"):
        ct2_ner.converted_model(adapter, base, "int8")


def test_missing_adapter_is_a_clear_error(tiny_ner, tmp_path):
    with pytest.raises(FileNotFoundError, match="train_ner"):
        ct2_ner.conversion_key(tmp_path, tiny_ner[1])


def test_backend_setting_is_validated_and_matches_the_engines():
    assert load_settings().diseases.model_backend in BACKENDS
    assert set(get_args(DiseaseSettings.model_fields["model_backend"].annotation)) == set(BACKENDS)
    with pytest.raises(ConfigError, match="model_backend"):
        load_settings(diseases={"model_backend": "onnx"})
    with pytest.raises(ValueError, match="unknown NER backend"):
        model_scores(["text"], backend="onnx")


def test_engine_agreement_and_adoption_verdict():
    from eval.disease_engines import agreement, verdict
    from tools.diseases.ner import TokenScores

    offs = [(0, 4), (5, 11)]
    a = [TokenScores(offs, [1, 2], [0.9, 0.8]), TokenScores([], [], [])]
    b = [TokenScores(offs, [1, 0], [0.85, 0.4]), TokenScores([], [], [])]
    assert agreement(a, b) == {"tokens": 2, "label_agreement": 0.5, "max_abs_dp_disease": 0.4}
    with pytest.raises(ValueError, match="tokenised"):
        agreement(a, [TokenScores(offs[:1], [1], [0.9]), b[1]])

    def corpus(f1_torch: float, f1_ct2: float, agree: float, fast: float) -> dict:
        return {"engines": {"torch": {"exact": {"f1": f1_torch}},
                            "ctranslate2": {"exact": {"f1": f1_ct2}}},
                "agreement": {"label_agreement": agree},
                "speed": {"torch": {"median": 5.0}, "ctranslate2": {"median": fast}}}

    assert verdict({"a": corpus(0.875, 0.874, 0.998, 7.0)})["adopt_ctranslate2"]
    for bad in (corpus(0.875, 0.872, 0.998, 7.0), corpus(0.875, 0.875, 0.98, 7.0),
                corpus(0.875, 0.875, 0.998, 4.0)):
        assert not verdict({"a": corpus(0.875, 0.874, 0.998, 7.0), "b": bad})["adopt_ctranslate2"]


def test_record_names_the_ner_engine():
    from tools.diseases import adapter_available, model_info

    assert adapter_available()  # adapters/ner-minilm/ is committed
    ner = model_info(("model",), backend="torch")[0]
    assert ner.kind == "disease-ner" and ner.backend == "torch"
    assert model_info(("model",))[0].backend == load_settings().diseases.model_backend


def test_concurrent_first_calls_convert_once(tiny_ner, tmp_path, monkeypatch):
    from concurrent.futures import ThreadPoolExecutor

    monkeypatch.setenv("ONCOGRAPH_CACHE", str(tmp_path))
    calls = []
    real = ct2_ner.convert

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(ct2_ner, "convert", counted)
    adapter, base = tiny_ner
    with ThreadPoolExecutor(3) as pool:
        folders = list(pool.map(lambda _: ct2_ner.converted_model(adapter, base, "int8"), range(3)))
    assert len(calls) == 1 and len(set(folders)) == 1
    assert sorted(p.name for p in folders[0].parent.iterdir()) == [folders[0].name]  # no leftovers
