"""The CTranslate2 chat engine answers as torch does, from a cached full-vocabulary conversion,
and `chat.backend` selects it wherever a chat model loads on its own."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from langchain_core.messages import HumanMessage

from core.settings import ConfigError, load_settings

pytest.importorskip("ctranslate2")

from tools import chat_ct2  # noqa: E402 - needs ctranslate2
from tools.chat_model import LocalChat, build_chat_model, get_chat_model, model_label  # noqa: E402
from tools.classifier import ct2_engine  # noqa: E402

PROMPTS = ["Name a tumour.", "Which organ does asthma affect?"]


@pytest.fixture(scope="module")
def lively_qwen_dir(tmp_path_factory, qwen_tokenizer_dir) -> Path:
    """A 2-layer random Qwen2 with large weights and an untied head, so greedy decoding walks
    through many different tokens (the default init repeats one token, which hides errors)."""
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(qwen_tokenizer_dir)
    torch.manual_seed(0)
    config = Qwen2Config(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
        tie_word_embeddings=False, initializer_range=0.5, pad_token_id=tokenizer.pad_token_id,
    )
    out = tmp_path_factory.mktemp("lively-qwen")
    Qwen2ForCausalLM(config).to(torch.bfloat16).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


@pytest.fixture()
def cache(tmp_path, monkeypatch, lively_qwen_dir):
    monkeypatch.setenv("ONCOGRAPH_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture()
def torch_chat(lively_qwen_dir) -> LocalChat:
    return build_chat_model(lively_qwen_dir, name="lively", max_new_tokens=10)


def test_float32_conversion_answers_exactly_as_torch(lively_qwen_dir, cache, torch_chat):
    chat = chat_ct2.build_ct2_chat(lively_qwen_dir, name="lively", max_new_tokens=10,
                                   compute_type="float32")
    for prompt in PROMPTS:
        want = torch_chat.invoke(prompt).content
        ids = chat.answer_ids([HumanMessage(prompt)], 10)
        assert len(ids) == 10 and len(set(ids)) > 3, "the budget binds; varied tokens"
        assert chat.invoke(prompt).content == want
    # a lower budget per call, as analyse_citations binds it: the same first tokens
    short = chat.bind(max_new_tokens=4).invoke(PROMPTS[0]).content
    assert short == torch_chat.invoke(PROMPTS[0], max_new_tokens=4).content
    assert short != torch_chat.invoke(PROMPTS[0]).content
    assert len(chat.answer_ids([HumanMessage(PROMPTS[0])], 4)) == 4


def test_int8_is_quantised_and_named_for_the_record(lively_qwen_dir, cache):
    float32 = chat_ct2.build_ct2_chat(lively_qwen_dir, name="lively", compute_type="float32")
    int8 = chat_ct2.build_ct2_chat(lively_qwen_dir, name="lively")
    message = [HumanMessage(PROMPTS[0])]
    assert int8.answer_ids(message, 8) != float32.answer_ids(message, 8), \
        "int8 must not be the float path in disguise"
    assert model_label(int8) == "llm:lively:int8"


def test_generation_stops_at_the_end_token(lively_qwen_dir, cache, torch_chat):
    chat = chat_ct2.build_ct2_chat(lively_qwen_dir, name="lively", compute_type="float32")
    eos = torch_chat.model.generation_config.eos_token_id  # what torch stops on
    assert chat.end_ids == [torch_chat.tokenizer.eos_token_id if eos is None else eos]
    message = [HumanMessage(PROMPTS[1])]
    ids = chat.answer_ids(message, 12)
    cut = next(i for i in range(1, len(ids)) if ids[i] not in ids[:i])
    stopping = chat.model_copy(update={"end_ids": [ids[cut]]})
    assert stopping.answer_ids(message, 12) == ids[:cut]


def test_the_conversion_keeps_the_whole_vocabulary_and_is_cached(lively_qwen_dir, cache,
                                                                 monkeypatch):
    from transformers import AutoConfig

    chat = chat_ct2.build_ct2_chat(lively_qwen_dir, name="lively")
    logits = chat.generator.forward_batch([[1, 2, 3]])
    assert tuple(logits.shape) == (1, 3, AutoConfig.from_pretrained(lively_qwen_dir).vocab_size)
    folders = list((cache / "ct2").iterdir())
    assert [f.name.startswith("lively-chat-") for f in folders] == [True]
    key = json.loads((folders[0] / "oncograph.json").read_text())
    assert key == chat_ct2.conversion_key("lively", str(lively_qwen_dir), "int8")

    def no_reconversion(*args, **kwargs):
        raise AssertionError("a cached conversion was converted again")

    monkeypatch.setattr(ct2_engine, "convert", no_reconversion)
    assert chat_ct2.converted_generator("lively", str(lively_qwen_dir)) == folders[0]
    with pytest.raises(AssertionError, match="converted again"):  # another type: new folder
        chat_ct2.converted_generator("lively", str(lively_qwen_dir), "float32")


def test_a_folder_without_a_model_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no config.json"):
        chat_ct2.build_ct2_chat(tmp_path)


def test_chat_backend_selects_the_engine_and_cuda_keeps_torch(lively_qwen_dir, cache,
                                                              monkeypatch):
    import tools.chat_model
    import tools.weights

    monkeypatch.setattr(tools.weights, "prepare", lambda name: lively_qwen_dir)
    get_chat_model.cache_clear()
    try:
        int8 = get_chat_model("qwen2.5-0.5b", "ctranslate2")
        assert isinstance(int8, chat_ct2.Ct2Chat) and int8.model_id == "qwen2.5-0.5b:int8"
        assert get_chat_model("qwen2.5-0.5b", "ctranslate2") is int8  # loaded once
        assert isinstance(get_chat_model("qwen2.5-0.5b", "torch"), LocalChat)
        get_chat_model.cache_clear()
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # no GPU here: the
        on_torch = object()  # torch build would move the model there, so stand it in
        monkeypatch.setattr(tools.chat_model, "build_chat_model", lambda path, name: on_torch)
        assert get_chat_model("qwen2.5-0.5b", "ctranslate2") is on_torch
    finally:
        get_chat_model.cache_clear()


def test_chat_backend_is_a_validated_setting():
    assert load_settings().chat.backend in ("torch", "ctranslate2")
    assert load_settings(chat={"backend": "ctranslate2"}).chat.backend == "ctranslate2"
    with pytest.raises(ConfigError, match="chat.backend"):
        load_settings(chat={"backend": "onnx"})


def test_a_config_without_the_chat_section_is_an_error(tmp_path, monkeypatch):
    import core.settings

    default = (core.settings.CONFIG_DIR / "default.yaml").read_text()
    start = default.index("\nchat:")
    end = default.index("\nrun:")
    folder = tmp_path / "configs"
    folder.mkdir()
    (folder / "default.yaml").write_text(default[:start] + default[end:])
    monkeypatch.setattr(core.settings, "CONFIG_DIR", folder)
    with pytest.raises(ConfigError, match="chat"):
        load_settings()
