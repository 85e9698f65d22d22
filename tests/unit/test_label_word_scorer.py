"""The label-word scorer's two-row projection equals the model's own full-vocabulary head."""

from __future__ import annotations

import torch

from tools.classifier.label_words import PromptEncoder, answer_logits, label_token_ids

TEXTS = [
    "Title: Tamoxifen in breast cancer\nAbstract: A cohort of 120 women with ER+ tumours.",
    "Title: Asthma\nAbstract: Inhaled steroids.",
]


def _full_head_logits(model, batch, label_ids) -> torch.Tensor:
    out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    return out.logits[:, -1, label_ids].float()


def _tiny_fp32(tiny_qwen_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_qwen_dir)
    tokenizer.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(tiny_qwen_dir, dtype=torch.float32).eval()
    return model, tokenizer


@torch.no_grad()
def test_two_row_projection_matches_the_full_head_with_left_padding(tiny_qwen_dir):
    model, tokenizer = _tiny_fp32(tiny_qwen_dir)
    batch = PromptEncoder(tokenizer, max_length=128).encode(TEXTS)
    assert (batch["attention_mask"][1] == 0).any(), "the short text must be left-padded"
    ids = label_token_ids(tokenizer)
    got = answer_logits(model, batch, ids)
    assert got.shape == (2, 2) and got.dtype == torch.float32
    torch.testing.assert_close(got, _full_head_logits(model, batch, ids), rtol=1e-4, atol=1e-5)


@torch.no_grad()
def test_two_row_projection_goes_through_a_peft_lora(tiny_qwen_dir):
    from peft import LoraConfig, get_peft_model

    model, tokenizer = _tiny_fp32(tiny_qwen_dir)
    batch = PromptEncoder(tokenizer, max_length=128).encode(TEXTS)
    ids = label_token_ids(tokenizer)
    before = answer_logits(model, batch, ids)
    peft_model = get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj", "down_proj"]))
    for name, param in peft_model.named_parameters():
        if "lora_B" in name:  # peft starts B at zero: a no-op adapter would prove nothing
            torch.nn.init.normal_(param, std=0.5)
    got = answer_logits(peft_model, batch, ids)
    assert not torch.allclose(got, before)
    torch.testing.assert_close(got, _full_head_logits(peft_model, batch, ids), rtol=1e-4, atol=1e-5)
