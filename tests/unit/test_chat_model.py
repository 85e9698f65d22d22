"""The chat model: the classifier's own tiny random Qwen with its LoRA adapter switched off
(no second model), restored afterwards, and the fallback to a separately loaded model."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import yaml
from langchain_core.language_models.fake_chat_models import FakeListChatModel

from core.settings import ModelConfig, load_settings
from tools.citations import analyse_citations
from tools.preprocess import preprocess

TEXTS = ["Lung cancer cells grow fast.", "Asthma in children.", "A tumour of the liver."]
CITED = preprocess("Skin tags",
                   "Skin tags are common [1]. We used the method of Brown et al., 2018.")


@pytest.fixture(scope="module")
def tiny_lora_cfg(tmp_path_factory, tiny_qwen_dir) -> ModelConfig:
    """The tiny Qwen with a random (non-zero) LoRA adapter, kept unmerged."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(1)
    base = AutoModelForCausalLM.from_pretrained(tiny_qwen_dir)
    lora = LoraConfig(r=4, target_modules=["q_proj", "v_proj", "down_proj"],
                      init_lora_weights=False, task_type="CAUSAL_LM")  # B random: not a no-op
    folder = tmp_path_factory.mktemp("tiny-lora")
    get_peft_model(base, lora).save_pretrained(folder)
    return ModelConfig(name="tiny-qwen", kind="causal-lm-label-words", path=str(tiny_qwen_dir),
                       adapter=str(folder), max_length=128, batch_size=4, merge_adapter=False)


@pytest.fixture(scope="module")
def scorer(tiny_lora_cfg):
    from tools.classifier.label_words import LabelWordClassifier

    return LabelWordClassifier(tiny_lora_cfg)


def test_the_chat_runs_the_base_and_the_classifier_is_unchanged_after(tiny_lora_cfg, scorer):
    from tools.chat_model import LocalChat, shared_chat_model
    from tools.classifier.label_words import LabelWordClassifier

    base = LabelWordClassifier(tiny_lora_cfg, use_adapter=False)
    before = scorer.predict_proba(TEXTS)
    assert not np.allclose(before, base.predict_proba(TEXTS))  # the adapter matters

    chat = shared_chat_model(tiny_lora_cfg, scorer)
    assert chat.model is scorer.model and chat.adapter_off  # no second model
    assert chat.lock is scorer.lock
    said = chat.invoke("Name a tumour.", max_new_tokens=6).content
    plain = LocalChat(model=base.model, tokenizer=base.tokenizer, model_id="base")
    assert said == plain.invoke("Name a tumour.", max_new_tokens=6).content  # adapter was off
    on = LocalChat(model=scorer.model, tokenizer=scorer.tokenizer, model_id="on")
    assert on.invoke("Name a tumour.", max_new_tokens=6).content != said

    result = analyse_citations(CITED, llm=chat)  # random weights: garbage, so rules answer
    assert result.analyser == "rules"
    np.testing.assert_array_equal(scorer.predict_proba(TEXTS), before)  # adapter restored


def test_classification_waits_while_a_chat_call_holds_the_model(scorer):
    done = threading.Event()

    def classify():
        scorer.predict_proba(TEXTS[:1])
        done.set()

    with scorer.lock:
        worker = threading.Thread(target=classify)
        worker.start()
        assert not done.wait(0.3)  # the adapter may be off: a batch must not run now
    worker.join(timeout=30)
    assert done.is_set()


def test_a_merged_adapter_does_not_lend_its_base(tiny_lora_cfg, monkeypatch):
    import tools.chat_model
    from tools.chat_model import chat_model_for, lends_base, shared_chat_model

    merged = tiny_lora_cfg.model_copy(update={"merge_adapter": True})
    assert not lends_base(merged) and lends_base(tiny_lora_cfg)
    assert not lends_base(ModelConfig(name="kw", kind="keyword-rule"))
    # no torch model to lend
    assert not lends_base(tiny_lora_cfg.model_copy(update={"backend": "ctranslate2"}))
    with pytest.raises(ValueError, match="does not lend"):
        shared_chat_model(merged, object())
    fake = FakeListChatModel(responses=["x"])
    asked = []
    monkeypatch.setattr(tools.chat_model, "get_chat_model",
                        lambda name, backend: asked.append((name, backend)) or fake)
    assert chat_model_for("keyword-rule", "qwen2.5-0.5b", "ctranslate2") is fake
    assert asked == [("qwen2.5-0.5b", "ctranslate2")]  # chat.backend reaches the loader


@pytest.mark.parametrize("backend", ["torch", "ctranslate2"])
def test_chat_model_for_reuses_the_loaded_classifier(tiny_lora_cfg, tmp_path, backend):
    """A torch classifier with its adapter unmerged lends its base whatever `chat.backend`
    says: no second model loads (the int8 engine is for a chat model loaded on its own)."""
    from tools.chat_model import LocalChat, chat_model_for, model_label
    from tools.classifier.registry import get_classifier

    path = tmp_path / "tiny-lora.yaml"
    path.write_text(yaml.safe_dump(tiny_lora_cfg.model_dump()))
    try:
        chat = chat_model_for(str(path), "never-loaded", backend)
        assert isinstance(chat, LocalChat) and chat.adapter_off
        assert chat.model is get_classifier(str(path)).scorer.model
        assert model_label(chat) == "llm:tiny-qwen:base"
    finally:
        get_classifier.cache_clear()


def _node_state() -> dict:
    return {"doc": CITED.model_dump(), "classification": {"label": "Non-Cancer"}, "diseases": []}


def test_the_node_asks_the_llm_by_default_and_never_without_citations(monkeypatch):
    import agents.citation_analyst as node

    settings = load_settings()
    assert settings.citations.llm  # on by default
    asked = []

    def factory(classifier, llm_model, backend):
        asked.append((classifier, llm_model, backend))
        return FakeListChatModel(responses=['{"functions": ["background", "method"], '
                                            '"summary": "Cites prior work and a method."}'])

    monkeypatch.setattr(node, "chat_model_for", factory)
    config = {"configurable": {"settings": settings}}
    out = node.analyse_citations_node(_node_state(), config)
    assert out["citation_analysis"]["analyser"] == "llm:FakeListChatModel"
    assert [c["function"] for c in out["citation_analysis"]["citations"]] == ["background",
                                                                             "method"]
    assert asked == [(settings.classifier.model, settings.citations.llm_model,
                      settings.chat.backend)]

    plain = {**_node_state(), "doc": preprocess("t", "No references.").model_dump()}
    assert node.analyse_citations_node(plain, config)["citation_analysis"]["analyser"] == "rules"
    assert len(asked) == 1  # no citations: no chat model built, no call

    off = load_settings(citations={"llm": False})
    out = node.analyse_citations_node(_node_state(), {"configurable": {"settings": off}})
    assert out["citation_analysis"]["analyser"] == "rules" and len(asked) == 1


def test_setup_prepares_the_weights_the_default_citation_llm_needs(project_root):
    import re

    from core.settings import load_model_config
    from tools.chat_model import lends_base

    script = (project_root / "scripts" / "setup.sh").read_text()
    prepared = re.search(r"WEIGHTS=\$\{ONCOGRAPH_WEIGHTS-([^}]*)\}", script).group(1).split()
    settings = load_settings()
    cfg = load_model_config(settings.classifier.model)
    needed = cfg.weights if lends_base(cfg) else settings.citations.llm_model
    assert needed in prepared
