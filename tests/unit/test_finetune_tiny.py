"""Train -> save adapter -> load -> predict -> evaluate, on tiny random-weight models.

Qwen2 (label-word loss, the real Qwen tokenizer) and BERT (LoRA + 2-way head, the real
MiniLM tokenizer), each built from a config in seconds. Then eval.compare on them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from core.labels import Example
from core.settings import load_model_config
from finetune.train import train
from tools.classifier import registry

TEXTS = [
    ("Metastatic breast carcinoma treated with chemotherapy.", 1),
    ("Leukaemia relapse after stem cell transplant in children.", 1),
    ("Tumour suppressor loss drives lung adenocarcinoma growth.", 1),
    ("Lymphoma incidence in a national cancer registry.", 1),
    ("Blood pressure control in type 2 diabetes.", 0),
    ("Asthma exacerbations and viral infections in winter.", 0),
    ("Exercise therapy for knee osteoarthritis pain.", 0),
    ("Sleep duration and depressive symptoms in adolescents.", 0),
]
EXAMPLES = [Example(f"id{i}", t, y) for i, (t, y) in enumerate(TEXTS)]


def _write_cfg(folder: Path, **cfg) -> str:
    path = folder / f"{cfg['name']}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


def _train_in(folder: Path, cfg_path: str, **kw) -> dict:
    """Train with checkpoints/ under `folder`, not the project."""
    here = Path.cwd()
    os.chdir(folder)
    try:
        return train(load_model_config(cfg_path), train_ex=EXAMPLES, val_ex=EXAMPLES, **kw)
    finally:
        os.chdir(here)


@pytest.fixture(scope="module")
def tiny_bert_dir(tmp_path_factory) -> Path:
    """A 2-layer random BERT around the real all-MiniLM-L6-v2 tokenizer."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    from tools.weights import prepare

    tokenizer = AutoTokenizer.from_pretrained(prepare("minilm"))
    torch.manual_seed(0)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=128)
    out = tmp_path_factory.mktemp("tiny-bert")
    BertModel(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def qwen_cfg(tmp_path_factory, tiny_qwen_dir) -> str:
    work = tmp_path_factory.mktemp("qwen-train")
    cfg = _write_cfg(
        work, name="tiny-qwen", kind="causal-lm-label-words", path=str(tiny_qwen_dir),
        adapter=str(work / "adapter"), max_length=64, batch_size=4,
        lora={"r": 4, "alpha": 8, "target_modules": ["q_proj", "v_proj"]},
        train={"batch_size": 4, "lr": 0.05, "eval_every": 2, "patience": 5, "max_steps": 2},
    )
    summary = _train_in(work, cfg)
    assert summary["steps"] == 2 and len(summary["history"]) == 1
    return cfg


@pytest.fixture(scope="module")
def bert_cfg(tmp_path_factory, tiny_bert_dir) -> str:
    work = tmp_path_factory.mktemp("bert-train")
    cfg = _write_cfg(
        work, name="tiny-bert", kind="encoder-lora", path=str(tiny_bert_dir),
        adapter=str(work / "adapter"), max_length=64, batch_size=4,
        lora={"r": 4, "alpha": 8, "target_modules": ["query", "value"]},
        train={"batch_size": 4, "lr": 0.01, "eval_every": 2, "patience": 5, "max_steps": 4},
    )
    _train_in(work, cfg)
    return cfg


def test_qwen_adapter_and_model_card_saved(qwen_cfg):
    adapter = load_model_config(qwen_cfg).adapter_path()
    assert (adapter / "adapter_config.json").exists()
    card = json.loads((adapter / "training.json").read_text())
    assert card["steps"] == 2 and card["peak_rss_gib"] > 0 and card["tail_share"] == 0
    text = (adapter / "README.md").read_text()
    assert "## Regenerate" in text and "(the abstract's first tokens)" in text


def test_qwen_finetuned_differs_from_baseline(qwen_cfg):
    texts = [t for t, _ in TEXTS]
    tuned = registry.get_classifier(qwen_cfg, "finetuned")
    base = registry.get_classifier(qwen_cfg, "baseline")
    p_tuned, p_base = tuned.predict_proba(texts), base.predict_proba(texts)
    assert p_tuned.shape == (len(texts),) and ((p_tuned >= 0) & (p_tuned <= 1)).all()
    assert np.abs(p_tuned - p_base).max() > 1e-4  # the adapter is really applied
    assert tuned.info.adapter_version and base.info.adapter_version is None
    assert base.info.name == "tiny-qwen:baseline"


def test_qwen_resume_continues_from_checkpoint(qwen_cfg, tmp_path):
    cfg = load_model_config(qwen_cfg)
    work = Path(qwen_cfg).parent
    longer = cfg.model_copy(update={"train": cfg.train.model_copy(update={"max_steps": 4})})
    cfg_path = _write_cfg(tmp_path, **{**longer.model_dump(), "name": "tiny-qwen"})
    saved = torch.load(work / "checkpoints" / "tiny-qwen" / "trainer_state.pt", weights_only=False)
    summary = _train_in(work, cfg_path, resume=True)
    registry.get_classifier.cache_clear()  # the adapter on disk changed: loaded ones are stale
    assert summary["steps"] == 4
    assert [h["step"] for h in summary["history"]] == [2, 4]
    # the smoothed train loss carries over: it is not restarted from the first resumed batch
    assert saved["running_loss"] == summary["history"][0]["train_loss"]
    # and a resumed run ends where an uninterrupted one does
    whole = tmp_path / "whole"
    whole.mkdir()
    straight = _write_cfg(whole, **{**longer.model_dump(), "adapter": str(whole / "adapter")})
    uninterrupted = _train_in(whole, straight)
    assert summary["history"][1]["train_loss"] == pytest.approx(
        uninterrupted["history"][1]["train_loss"], rel=1e-4)


def test_bert_head_and_adapter_reload_identically(bert_cfg):
    from tools.classifier.encoder import EncoderClassifier
    from tools.classifier.label_words import resolve_base_path

    cfg = load_model_config(bert_cfg)
    texts = [t for t, _ in TEXTS]
    a = EncoderClassifier(cfg, resolve_base_path(cfg)).predict_proba(texts)
    b = registry.get_classifier(bert_cfg, "finetuned").predict_proba(texts, calibrated=False)
    np.testing.assert_allclose(a, b, atol=1e-6)  # head restored, not re-initialised at random


def test_training_fits_a_val_calibration_that_inference_applies(qwen_cfg):
    from tools.classifier.calibration import Calibration

    calibration = Calibration.load(load_model_config(qwen_cfg).adapter_path())
    assert calibration is not None and calibration.fitted_on == "val"
    assert calibration.n == len(EXAMPLES)
    tuned = registry.get_classifier(qwen_cfg, "finetuned")
    texts = [t for t, _ in TEXTS]
    raw = tuned.predict_proba(texts, calibrated=False)
    np.testing.assert_allclose(tuned.predict_proba(texts), calibration.apply(raw), atol=1e-9)
    assert tuned.info.calibration and "val n=8" in tuned.info.calibration
    assert registry.get_classifier(qwen_cfg, "baseline").info.calibration is None


def test_bert_similarity_baseline(bert_cfg):
    clf = registry.get_classifier(bert_cfg, "baseline")
    p = clf.predict_proba([t for t, _ in TEXTS], prompt="definition")
    assert p.shape == (len(TEXTS),) and ((p > 0) & (p < 1)).all()
    assert clf.info.kind == "encoder-lora"


def test_missing_encoder_adapter_names_the_fix(tmp_path, tiny_bert_dir):
    cfg = _write_cfg(tmp_path, name="untrained", kind="encoder-lora", path=str(tiny_bert_dir),
                     adapter=str(tmp_path / "none"))
    with pytest.raises(FileNotFoundError, match="finetune.train --model untrained"):
        registry.get_classifier(cfg, "finetuned")


def test_compare_report_on_tiny_models(qwen_cfg, bert_cfg, tmp_path, monkeypatch):
    import finetune.data
    from eval import compare

    sub = EXAMPLES * 3  # 24 rows, both classes
    sub = [Example(f"r{i}", e.text, e.label) for i, e in enumerate(sub)]
    monkeypatch.setattr(finetune.data, "load_split", lambda split: sub)
    report = compare.run([qwen_cfg, bert_cfg], "test", tmp_path, refresh=False, n_boot=50)
    assert set(report["models"]) == {"keyword-rule", "tiny-qwen", "tiny-bert"}
    qwen = report["models"]["tiny-qwen"]
    assert set(qwen["variants"]) == {"baseline", "finetuned"}
    assert {"accuracy_change", "false_negatives_removed", "mean_p_true_after"} <= set(
        qwen["improvement"])
    assert qwen["training"]["steps"] >= 2
    md = (tmp_path / "comparison.md").read_text()
    assert "| Actual Cancer |" in md and "Improvement from fine-tuning" in md
    assert (tmp_path / "confusion_tiny-bert_finetuned.png").exists()
    cached = tmp_path / "predictions" / "tiny-qwen__finetuned__test.csv"
    assert cached.read_text().splitlines()[0] == "abstract_id,label,p_cancer"

    def no_model(*a, **k):
        raise AssertionError("cached predictions must be reused")

    monkeypatch.setattr(registry, "get_classifier", no_model)
    again = compare.run([qwen_cfg], "test", tmp_path, refresh=False, n_boot=50)
    assert again["models"]["tiny-qwen"]["variants"]["finetuned"]["metrics"] == \
        qwen["variants"]["finetuned"]["metrics"]
    empty = compare.run([bert_cfg], "test", tmp_path / "empty", refresh=False, n_boot=50,
                        cached_only=True)
    assert "no cached predictions" in empty["models"]["tiny-bert"]["skipped"]["finetuned"]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="QLoRA needs CUDA (bitsandbytes 4-bit)")
def test_qlora_trains_a_4bit_tiny_qwen_on_cuda(tmp_path, tiny_qwen_dir):
    """The CUDA path: 4-bit NF4 base, bf16 LoRA on top; runs whenever a GPU is present."""
    cfg = _write_cfg(
        tmp_path, name="tiny-qwen-qlora", kind="causal-lm-label-words", path=str(tiny_qwen_dir),
        adapter=str(tmp_path / "adapter"), max_length=64, batch_size=4,
        lora={"r": 4, "alpha": 8, "target_modules": ["q_proj", "v_proj"]},
        train={"batch_size": 4, "lr": 0.05, "eval_every": 2, "patience": 5, "max_steps": 2,
               "qlora": True},
    )
    summary = _train_in(tmp_path, cfg)
    assert summary["steps"] == 2 and np.isfinite(summary["best_val_loss"])
    p = registry.get_classifier(cfg, "finetuned").predict_proba([t for t, _ in TEXTS])
    assert np.isfinite(p).all()


def test_resume_with_a_stop_file_only_writes_the_checkpoints_record(qwen_cfg, tmp_path):
    """A killed run gets its training.json and card from its last checkpoint, untrained further."""
    cfg = load_model_config(qwen_cfg).model_dump()
    for steps in (2, 6):  # a 2-step run, then the same run resumed for 6 with STOP present
        (tmp_path / str(steps)).mkdir()
        path = _write_cfg(tmp_path / str(steps), **{
            **cfg, "adapter": str(tmp_path / "adapter"),
            "train": {**cfg["train"], "max_steps": steps}})
        if steps == 6:
            (tmp_path / "checkpoints" / "tiny-qwen" / "STOP").touch()
        summary = _train_in(tmp_path, path, resume=steps == 6)
    assert summary["steps"] == 2 and summary["stopped"] == "stop requested"
    assert [h["step"] for h in summary["history"]] == [2]
    assert json.loads((tmp_path / "adapter" / "training.json").read_text())["steps"] == 2
    assert not (tmp_path / "checkpoints" / "tiny-qwen" / "STOP").exists()  # consumed


def test_a_stop_file_ends_a_run_at_its_next_eval(qwen_cfg, tmp_path):
    cfg = load_model_config(qwen_cfg).model_dump()
    path = _write_cfg(tmp_path, **{**cfg, "adapter": str(tmp_path / "adapter"),
                                   "train": {**cfg["train"], "max_steps": 6}})
    (tmp_path / "checkpoints" / "tiny-qwen").mkdir(parents=True)
    (tmp_path / "checkpoints" / "tiny-qwen" / "STOP").touch()
    summary = _train_in(tmp_path, path)
    assert summary["steps"] == 2 and summary["stopped"] == "stop requested"
    state_file = tmp_path / "checkpoints" / "tiny-qwen" / "trainer_state.pt"
    saved = torch.load(state_file, weights_only=False)
    assert saved["step"] == 2  # the checkpoint was saved before it stopped


def test_cli_overrides_write_a_trial_adapter_elsewhere(qwen_cfg, tmp_path, monkeypatch):
    from finetune import train as train_module

    monkeypatch.chdir(tmp_path)  # checkpoints/ lands here
    monkeypatch.setattr(train_module, "load_split", lambda split: EXAMPLES)
    out = tmp_path / "trial"
    assert train_module.main(["--model", qwen_cfg, "--lr", "0.01", "--max-steps", "1",
                              "--output", str(out)]) == 0
    card = json.loads((out / "training.json").read_text())
    assert card["train"]["lr"] == 0.01 and card["steps"] == 1
    committed = load_model_config(qwen_cfg).adapter_path()
    assert json.loads((committed / "training.json").read_text())["train"]["lr"] == 0.05


def test_a_further_pass_starts_from_the_given_adapter(qwen_cfg, tmp_path, monkeypatch):
    from finetune import train as train_module

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(train_module, "load_split", lambda split: EXAMPLES)
    committed = load_model_config(qwen_cfg).adapter_path()
    prior = json.loads((committed / "training.json").read_text())
    # at lr 0 the first val loss is the starting point: the given adapter's, not the base model's
    runs = {}
    for name, extra in (("fresh", []), ("pass2", ["--init-adapter", str(committed)])):
        assert train_module.main(["--model", qwen_cfg, "--lr", "0", "--max-steps", "2",
                                  "--seed", "21", "--output", str(tmp_path / name), *extra]) == 0
        runs[name] = json.loads((tmp_path / name / "training.json").read_text())
    start = runs["pass2"]["history"][0]["val_loss"]
    assert abs(start - prior["best_val_loss"]) < 0.1 * abs(
        runs["fresh"]["history"][0]["val_loss"] - prior["best_val_loss"])
    assert runs["pass2"]["init_adapter"]["version"] == prior["version"]
    assert runs["pass2"]["init_adapter"]["model"] == prior["model"]
    assert runs["pass2"]["train"]["seed"] == 21 and "init_adapter" not in runs["fresh"]
    assert (tmp_path / "checkpoints" / f"tiny-qwen-from-{prior['version']}").is_dir()
    assert f"`{prior['version']}`" in (tmp_path / "pass2" / "README.md").read_text()
    # the comparison's training cost counts both passes
    from eval.compare import training_cost

    cfg = load_model_config(qwen_cfg)
    pass2_cfg = _write_cfg(tmp_path, **{**cfg.model_dump(), "adapter": str(tmp_path / "pass2")})
    cost = training_cost(pass2_cfg)
    assert cost["steps_per_pass"] == [prior["steps"], 2]
    assert cost["wall_time_s"] == pytest.approx(
        prior["wall_time_s"] + runs["pass2"]["wall_time_s"], abs=0.1)


def test_a_two_pass_card_names_each_pass_by_its_own_recipe():
    from finetune.card import _further_pass

    summary = {"model": "second", "wall_time_s": 60.0, "train": {"seed": 14},
               "init_adapter": {"model": "first", "version": "v1", "steps": 175,
                                "best_val_loss": 0.13, "wall_time_s": 120.0, "seed": 13}}
    run, regenerate = _further_pass(summary)
    assert "`v1`" in run and "3.0 min" in run
    assert ("--model first --seed 13 --output FIRST" in regenerate
            and "--model second --init-adapter FIRST --seed 14" in regenerate)


def test_a_further_pass_refuses_a_missing_or_misfit_adapter(qwen_cfg, tmp_path, monkeypatch,
                                                          capsys):
    from finetune import train as train_module

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(train_module, "load_split", lambda split: EXAMPLES)
    cfg = load_model_config(qwen_cfg)
    wider = {**cfg.model_dump(), "lora": {**cfg.lora.model_dump(), "r": 8}}
    args = ["--model", _write_cfg(tmp_path, **wider), "--max-steps", "1",
            "--output", str(tmp_path / "out")]
    assert train_module.main([*args, "--init-adapter", str(cfg.adapter_path())]) == 2
    assert "r is 4, this config trains 8" in capsys.readouterr().err
    assert train_module.main([*args, "--init-adapter", str(tmp_path / "nowhere")]) == 2
    assert "no saved LoRA adapter there" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()  # nothing was written
    assert train_module.main(["--model", "nope"]) == 2
    assert "unknown model 'nope'" in capsys.readouterr().err


def test_clipping_report_scores_each_tail_share_on_a_tiny_qwen(qwen_cfg, tmp_path, monkeypatch):
    import finetune.data
    from eval import clipping

    long = " ".join(["Patients were followed for years."] * 20)  # over the 64-token budget
    sub = [Example(f"r{i}", f"{e.text} {long} {e.text}", e.label) for i, e in enumerate(EXAMPLES)]
    monkeypatch.setattr(finetune.data, "load_split", lambda split: sub)
    assert clipping.main(["--model", qwen_cfg, "--tail-shares", "0.4", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "clipping.json").read_text())
    assert [r["tail_share"] for r in report["rows"]] == [0.0, 0.4]  # head-only always scored
    assert report["n"] == 8 and all(0 <= r["accuracy"] <= 1 for r in report["rows"])
    assert report["chosen"] in report["rows"] and (tmp_path / "clipping.png").exists()
    assert "| 0.4 |" in (tmp_path / "clipping.md").read_text()
    assert clipping.main(["--model", qwen_cfg, "--tail-shares", "1.5"]) == 2


def test_clipping_choice_never_trades_accuracy_for_log_loss():
    from eval.clipping import choose

    rows = [{"tail_share": 0.0, "accuracy": 0.96, "log_loss": 0.14},
            {"tail_share": 0.33, "accuracy": 0.95, "log_loss": 0.10},
            {"tail_share": 0.5, "accuracy": 0.96, "log_loss": 0.13}]
    assert choose(rows)["tail_share"] == 0.5
    assert choose(rows[:2])["tail_share"] == 0.0


def test_a_calibration_refit_rewrites_the_adapter_card(qwen_cfg, tmp_path):
    """`eval.calibrate` fits on the val split and the card quotes the map it wrote."""
    import shutil

    from eval.calibrate import calibrate

    adapter = tmp_path / "adapter"
    shutil.copytree(load_model_config(qwen_cfg).adapter_path(), adapter)
    cfg = _write_cfg(tmp_path, **{**yaml.safe_load(Path(qwen_cfg).read_text()),
                                  "adapter": str(adapter)})
    before = (adapter / "README.md").read_text()
    calibration = calibrate(cfg, out=tmp_path / "reports")
    assert calibration.n == 100  # the real val split, not the 8 training examples
    card = (adapter / "README.md").read_text()
    assert card != before and f"sigmoid({calibration.slope:.3f} * logit(P)" in card
