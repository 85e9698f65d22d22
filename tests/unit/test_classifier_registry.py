"""The registry and the classical references: cached loading, clear errors, real predictions."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from core.labels import Example
from core.settings import ConfigError
from finetune.train import fit_classical, main
from tools.classifier.classical import KeywordRule, TfidfLogReg
from tools.classifier.registry import get_classifier

CANCER = "Metastatic breast carcinoma treated with chemotherapy"
OTHER = "Blood pressure control in patients with type 2 diabetes"


def test_keyword_rule_grades_by_hits():
    p = KeywordRule().predict_proba([CANCER, OTHER, "A tumour study"])
    assert p[1] == pytest.approx(0.05)
    assert 0.5 < p[2] < p[0] <= 0.95


def test_get_classifier_is_cached_and_typed():
    clf = get_classifier("keyword-rule")
    assert get_classifier("keyword-rule") is clf
    assert clf.info.name == "keyword-rule" and clf.info.kind == "keyword-rule"
    assert clf.predict_proba([]).shape == (0,)
    with pytest.raises(TypeError, match="list of texts"):
        clf.predict_proba(CANCER)


def test_unknown_model_and_variant_are_clear_errors():
    with pytest.raises(ConfigError, match="unknown model 'nope'"):
        get_classifier("nope")
    with pytest.raises(ValueError, match="unknown variant"):
        get_classifier("keyword-rule", "zero-shot")


def test_trial_configs_load_by_name_but_stay_out_of_the_reports():
    from core.settings import TRIALS_DIR, available_models, load_model_config, trial_models

    trials = trial_models()
    assert trials and not set(trials) & set(available_models())
    cfg = load_model_config(trials[0])
    assert cfg == load_model_config(str(TRIALS_DIR / f"{trials[0]}.yaml"))
    with pytest.raises(ConfigError, match=f"trials: .*{trials[0]}"):
        load_model_config("nope")


def test_train_cli_refuses_the_rule(capsys):
    assert main(["--model", "keyword-rule"]) == 2
    assert "nothing to train" in capsys.readouterr().err


def test_tfidf_fit_save_load_predict(tmp_path):
    texts = [CANCER + " tumour", "Tumour relapse in leukaemia", "Lymphoma tumour in children",
             OTHER + " asthma", "Asthma exacerbations in winter", "Knee asthma and diabetes"]
    labels = [1, 1, 1, 0, 0, 0]
    examples = [Example(str(i), t, y) for i, (t, y) in enumerate(zip(texts, labels, strict=True))]
    cfg_path = tmp_path / "tfidf.yaml"
    cfg_path.write_text(yaml.safe_dump({"name": "tfidf-test", "kind": "tfidf-logreg",
                                        "adapter": str(tmp_path / "adapter")}))
    from core.settings import load_model_config

    meta = fit_classical(load_model_config(str(cfg_path)), train_ex=examples, val_ex=examples)
    assert meta["C"] > 0 and (tmp_path / "adapter" / "weights.npz").exists()
    clf = get_classifier(str(cfg_path))
    p = clf.predict_proba(texts)
    assert ((p >= 0.5) == np.array(labels, dtype=bool)).all()
    reloaded = TfidfLogReg.load(tmp_path / "adapter")
    np.testing.assert_allclose(reloaded.predict_proba(texts), p)


def test_committed_tfidf_adapter_loads():
    p = get_classifier("tfidf-logreg").predict_proba([CANCER, OTHER])
    assert p[0] > 0.5 > p[1]


def test_missing_tfidf_adapter_names_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match="finetune.train --model tfidf-logreg"):
        TfidfLogReg.load(tmp_path)


def test_prompt_encoder_clips_the_abstract_never_the_prompt(qwen_tokenizer_dir):
    from transformers import AutoTokenizer

    from tools.classifier.label_words import PromptEncoder

    tokenizer = AutoTokenizer.from_pretrained(qwen_tokenizer_dir)
    words = " ".join(f"w{i}" for i in range(300)) + " closing remark about tumours"
    head = PromptEncoder(tokenizer, 128)
    both = PromptEncoder(tokenizer, 128, tail_share=0.25)
    assert head.clip("short text") == both.clip("short text") == "short text"
    assert head.clip(words).startswith("w0 w1") and "tumours" not in head.clip(words)
    clipped = both.clip(words)
    assert clipped.startswith("w0 w1") and clipped.endswith("about tumours") and " ... " in clipped
    assert len(tokenizer.encode(clipped, add_special_tokens=False)) <= both.budget + 2
    batch = both.encode([words])  # the question and the answer slot survive the clipping
    text = tokenizer.decode(batch["input_ids"][0])
    assert text.rstrip().endswith("assistant") and "Answer Yes or No." in text
