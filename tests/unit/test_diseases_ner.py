"""NER training path on a tiny random-weight BERT (real MiniLM tokenizer), end to end."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from finetune import train_ner
from tools.diseases.corpus import read_pubtator
from tools.diseases.ner import bio_labels, decode, predict_spans, predict_tokens, windows


@pytest.fixture(scope="module")
def minilm_tokenizer():
    from transformers import AutoTokenizer

    from tools.weights import prepare

    return AutoTokenizer.from_pretrained(prepare("minilm"))


@pytest.fixture(scope="module")
def tiny_bert_dir(tmp_path_factory, minilm_tokenizer):
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=minilm_tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2,
        num_attention_heads=2, intermediate_size=64, max_position_embeddings=512,
    )
    out = tmp_path_factory.mktemp("tiny-bert")
    BertModel(config).save_pretrained(out)
    minilm_tokenizer.save_pretrained(out)
    return out


def test_decode_trims_function_words_and_punctuation_off_span_edges():
    text = "Haemopericardium and breast and ovarian cancer, seen."
    offsets = [(0, 16), (17, 20), (21, 27), (28, 31), (32, 39), (40, 46), (46, 47), (48, 52)]
    # a tagger's near-misses: "and" tagged into the first span, the comma into the second
    labels = [1, 2, 1, 2, 2, 2, 2, 0]
    assert decode(text, offsets, labels) == [(0, 16), (21, 46)]  # inner "and" stays
    assert decode(text, offsets, [0, 1, 0, 0, 0, 0, 0, 0]) == []  # "and" alone is no mention


def test_bio_labels_decode_back_to_gold_spans(minilm_tokenizer, data_dir):
    doc = read_pubtator(data_dir / train_ner.TRAIN_FILES[0])[0]
    [win] = windows(minilm_tokenizer, [doc.text])[:1]
    gold = [(m.start, m.end) for m in doc.mentions if m.end <= win.offsets[-2][1]]
    labels = bio_labels(win, gold)
    assert decode(doc.text, win.offsets, [max(0, lab) for lab in labels]) == sorted(set(gold))


def test_train_save_reload_predict(tiny_bert_dir, tmp_path):
    out, ckpt = tmp_path / "adapter", tmp_path / "ckpt"
    args = ["--base", str(tiny_bert_dir), "--limit", "2", "--epochs", "1", "--batch-size", "4",
            "--out", str(out), "--checkpoints", str(ckpt), "--no-bf16"]
    train_ner.main(args)
    info = json.loads((out / "training.json").read_text())
    assert info["epochs_done"] == 1 and set(info["best_dev_f1"]) == {"ncbi_dev", "bc5cdr_dev"}
    weights = load_file(out / "adapter_model.safetensors")
    assert any("classifier" in k for k in weights) and any("lora_A" in k for k in weights)
    assert (out / "README.md").exists() and (ckpt / "last.pt").exists()

    from tools.diseases.model import load_ner

    model, tokenizer = load_ner(str(out), str(tiny_bert_dir))
    head = next(v for k, v in weights.items() if "classifier" in k and k.endswith("weight"))
    assert torch.equal(model.classifier.weight, head)  # the trained head, not a fresh one
    spans = predict_spans(model, tokenizer, ["Lung cancer and asthma.", ""])
    assert len(spans) == 2 and spans[1] == []
    assert all(0 <= s < e <= 23 for s, e in spans[0])
    scores = predict_tokens(model, tokenizer, ["Lung cancer and asthma."])[0]
    assert len(scores.offsets) == len(scores.labels) == len(scores.p_disease) >= 4
    assert all(0.0 <= p <= 1.0 for p in scores.p_disease)
    assert decode("Lung cancer and asthma.", scores.offsets, scores.labels) == spans[0]

    train_ner.main([*args, "--resume"])  # resumes from the checkpoint: nothing left to do
    assert json.loads((out / "training.json").read_text())["steps"] == info["steps"]
