"""Shared fixtures: tiny random-weight models around the REAL Qwen tokenizer.

The tokenizer comes from part 1 of the pinned Qwen GGUF split (tools.weights.prepare_tokenizer),
so prompts, label words and truncation run exactly as in production, in seconds.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from core.settings import PROJECT_ROOT, load_settings


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """tests/unit: in-process, tiny models; tests/integration: redis, subprocesses, servers.
    `pytest -m unit` or `-m integration` runs one side (`make test-unit`)."""
    for item in items:
        for kind in ("unit", "integration"):
            if f"tests/{kind}/" in item.path.as_posix():
                item.add_marker(getattr(pytest.mark, kind))


# tiny models gain nothing from threads, and oversubscribed OpenMP threads stall whatever
# else runs on the machine (a training job, other test workers)
torch.set_num_threads(int(os.environ.get("ONCOGRAPH_TEST_THREADS", "1")))


@pytest.fixture(scope="session")
def qwen_tokenizer_dir() -> Path:
    from tools.weights import prepare_tokenizer

    return prepare_tokenizer()


@pytest.fixture(scope="session")
def tiny_qwen_dir(tmp_path_factory, qwen_tokenizer_dir) -> Path:
    """A 2-layer Qwen2 causal LM with random weights, saved like a real checkpoint."""
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(qwen_tokenizer_dir)
    torch.manual_seed(0)
    config = Qwen2Config(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
        tie_word_embeddings=True, pad_token_id=tokenizer.pad_token_id,
    )
    model = Qwen2ForCausalLM(config).to(torch.bfloat16)
    out = tmp_path_factory.mktemp("tiny-qwen")
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tiny_ner(tmp_path_factory):
    """(adapter dir, base dir) for the NER engines: a 2-layer BERT (real MiniLM tokenizer)
    saved as a base checkpoint, and a LoRA adapter with non-zero B matrices (so the merge
    changes the weights) and a trained head."""
    from peft import LoraConfig, TaskType, get_peft_model
    from transformers import AutoTokenizer, BertConfig, BertForTokenClassification, BertModel

    from tools.diseases.ner import LABELS
    from tools.weights import prepare

    tokenizer = AutoTokenizer.from_pretrained(prepare("minilm"))
    torch.manual_seed(0)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64,
                        max_position_embeddings=512)
    base = tmp_path_factory.mktemp("tiny-bert-base")
    BertModel(config).save_pretrained(base)
    tokenizer.save_pretrained(base)
    model = BertForTokenClassification.from_pretrained(base, num_labels=len(LABELS))
    peft = get_peft_model(model, LoraConfig(task_type=TaskType.TOKEN_CLS, r=4, lora_alpha=8,
                                            target_modules=["query", "value"]))
    with torch.no_grad():
        for name, p in peft.named_parameters():
            if "lora_B" in name or "classifier" in name:
                p.normal_(0, 0.5)
    adapter = tmp_path_factory.mktemp("tiny-ner-adapter")
    peft.save_pretrained(adapter)
    return adapter, base


@pytest.fixture(scope="session")
def data_dir() -> Path:
    path = load_settings().data_path()
    if not (path / "abstracts").exists():
        pytest.fail(f"shared data not found at {path}; set ONCOGRAPH_DATA")
    return path


@pytest.fixture(scope="session")
def project_root() -> Path:
    return PROJECT_ROOT


@pytest.fixture(scope="session")
def light_config(tmp_path_factory, tiny_qwen_dir) -> Path:
    """A run config on the tiny random Qwen (no adapter) and the dictionary disease route."""
    import yaml

    folder = tmp_path_factory.mktemp("light-config")
    model_yaml = folder / "tiny-qwen.yaml"
    model_yaml.write_text(
        yaml.safe_dump(
            {"name": "tiny-qwen", "kind": "causal-lm-label-words", "path": str(tiny_qwen_dir),
             "adapter": None, "max_length": 128, "batch_size": 4}
        )
    )
    config = folder / "light.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "classifier": {"model": str(model_yaml)},
                "diseases": {"routes": ["dictionary"]},
                "verifier": {"confidence_threshold": 0.85,
                             "ladder": [{"view": "abstract_first", "prompt": "definition"}]},
                "run": {"checkpoint_db": str(folder / "checkpoints.sqlite")},
            }
        )
    )
    return config
