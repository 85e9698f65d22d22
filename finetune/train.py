"""LoRA fine-tuning of a classifier on the fixed train split, early-stopped on val.

    python -m finetune.train --model qwen2.5-1.5b [--resume] [--max-steps N]
    python -m finetune.train --model qwen2.5-1.5b --init-adapter DIR --seed 14   # a further pass

Causal LMs train with label-word loss: cross-entropy over the "Yes"/"No" logits at the
answer position, the very quantity the zero-shot baseline scores. Encoders (minilm)
train a LoRA adapter plus a 2-way head. Checkpoints every eval; `--resume` continues.
The best adapter (by val loss) lands in the model's `adapter` folder with a model card.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import random
import resource
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from core.labels import Example
from core.metrics import log_loss
from core.settings import ConfigError, ModelConfig, load_model_config, load_settings
from finetune.data import load_split
from tools.classifier.calibration import fit_platt

log = logging.getLogger("finetune")


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def compact_adapter(folder: Path) -> None:
    """Store adapter weights in bf16: half the size in git; the merge at load is bf16 anyway."""
    from safetensors.torch import load_file, save_file

    path = folder / "adapter_model.safetensors"
    tensors = load_file(path)
    if any(t.dtype == torch.float32 for t in tensors.values()):
        compact = {k: v.to(torch.bfloat16).contiguous() for k, v in tensors.items()}
        save_file(compact, path, metadata={"format": "pt"})


class AdapterMismatch(ValueError):
    """A saved adapter does not fit the LoRA layout this config trains."""


def _seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


class Trainer:
    """A small explicit loop: we need the two-logit loss, resumable state and val stopping."""

    def __init__(self, cfg: ModelConfig, out_dir: Path, ckpt_dir: Path, base: str | None = None):
        from peft import LoraConfig, get_peft_model

        from tools.classifier.backends import build_trainable

        self.cfg = cfg
        self.out_dir, self.ckpt_dir = out_dir, ckpt_dir
        self.head = build_trainable(cfg, base)  # model wrapper: .model, .batch(), .logits()
        lora = LoraConfig(
            r=cfg.lora.r,
            lora_alpha=cfg.lora.alpha,
            lora_dropout=cfg.lora.dropout,
            target_modules=cfg.lora.target_modules,
            modules_to_save=self.head.modules_to_save,
            layers_to_transform=self.head.top_layer_ids(cfg.lora.top_layers),
            task_type=self.head.task_type,
        )
        self.model = get_peft_model(self.head.model, lora)
        if cfg.train.gradient_checkpointing:
            self.model.gradient_checkpointing_enable(
                gradient_checkpointing_kwargs={"use_reentrant": False})
            self.model.enable_input_require_grads()
        self.head.model = self.model
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(params, lr=cfg.train.lr, weight_decay=0.0)
        self.step = 0
        self.best_val = math.inf
        self.bad_evals = 0
        self.running_loss: float | None = None  # the bar's smoothed loss; a resume carries it on
        self.history: list[dict] = []
        # wall time and peak memory carry over a resume, so the model card shows the whole run
        self.started = time.time()
        self.elapsed_before = 0.0
        self.peak_before = 0.0

    def n_trainable(self) -> int:
        return sum(p.numel() for p in self.model.parameters() if p.requires_grad)

    def lr_at(self, step: int, total: int) -> float:
        warm = max(1, int(self.cfg.train.warmup_ratio * total))
        if step < warm:
            return self.cfg.train.lr * (step + 1) / warm
        return self.cfg.train.lr * max(0.0, (total - step) / max(1, total - warm))

    def loss(self, examples: list[Example]) -> torch.Tensor:
        logits = self.head.logits(examples)
        # column 0 = Cancer
        target = torch.tensor([1 - ex.label for ex in examples], device=logits.device)
        return torch.nn.functional.cross_entropy(logits, target)

    @torch.no_grad()
    def evaluate(self, examples: list[Example], batch_size: int) -> tuple[dict, np.ndarray]:
        """Val metrics, plus P(Cancer) per example (the calibration is fitted on them)."""
        from sklearn.metrics import roc_auc_score

        self.model.eval()
        probs = []
        for i in range(0, len(examples), batch_size):
            chunk = examples[i : i + batch_size]
            probs.extend(torch.softmax(self.head.logits(chunk), -1)[:, 0].cpu().tolist())
        self.model.train()
        y = np.array([ex.label for ex in examples])
        p = np.clip(np.array(probs), 1e-7, 1 - 1e-7)
        metrics = {
            "val_loss": log_loss(y, p),
            "val_accuracy": float(np.mean((p >= 0.5) == y)),
            "val_auc": float(roc_auc_score(y, p)),
        }
        return metrics, p

    def save_checkpoint(self) -> None:
        tmp = self.ckpt_dir.with_name(self.ckpt_dir.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        self.model.save_pretrained(str(tmp))
        torch.save(
            {
                "optimizer": self.optimizer.state_dict(),
                "step": self.step,
                "best_val": self.best_val,
                "bad_evals": self.bad_evals,
                "running_loss": self.running_loss,
                "history": self.history,
                "rng": torch.get_rng_state(),
                "elapsed_s": self.elapsed_before + time.time() - self.started,
                "peak_rss_gib": max(self.peak_before, peak_rss_gib()),
            },
            tmp / "trainer_state.pt",
        )
        shutil.rmtree(self.ckpt_dir, ignore_errors=True)
        tmp.replace(self.ckpt_dir)

    def load_adapter_weights(self, folder: Path) -> None:
        """Set the LoRA weights from a saved adapter; refuses one of another shape."""
        from peft import set_peft_model_state_dict
        from safetensors.torch import load_file

        saved = json.loads((folder / "adapter_config.json").read_text())
        ours = self.model.peft_config["default"]
        for key in ("r", "lora_alpha", "layers_to_transform"):
            if saved.get(key) != getattr(ours, key):
                raise AdapterMismatch(f"adapter {folder}: {key} is {saved.get(key)}, this "
                                      f"config trains {getattr(ours, key)}")
        targets = set(self.cfg.lora.target_modules)  # what __init__ gave LoraConfig
        if set(saved.get("target_modules") or []) != targets:
            raise AdapterMismatch(f"adapter {folder}: target_modules "
                                  f"{saved.get('target_modules')} differ from this config's "
                                  f"{sorted(targets)}")
        set_peft_model_state_dict(self.model, load_file(folder / "adapter_model.safetensors"))

    def load_checkpoint(self) -> None:
        state = torch.load(self.ckpt_dir / "trainer_state.pt", weights_only=False)
        self.load_adapter_weights(self.ckpt_dir)
        self.optimizer.load_state_dict(state["optimizer"])
        self.step, self.best_val = state["step"], state["best_val"]
        self.bad_evals, self.history = state["bad_evals"], state["history"]
        self.running_loss = state.get("running_loss")
        torch.set_rng_state(state["rng"])
        last_eval = self.history[-1]["elapsed_s"] if self.history else 0.0
        self.elapsed_before = state.get("elapsed_s", last_eval)
        self.peak_before = state.get("peak_rss_gib", 0.0)
        log.info("resumed at step %d (best val loss %.4f)", self.step, self.best_val)


def _init_record(folder: Path) -> dict:
    """What a further pass started from, so its card names the whole recipe."""
    record: dict = {"path": str(folder)}
    info = folder / "training.json"
    if info.exists():
        prior = json.loads(info.read_text())
        keys = ("model", "version", "steps", "best_val_loss", "wall_time_s", "peak_rss_gib")
        record.update({k: prior.get(k) for k in keys})
        record["seed"] = prior.get("train", {}).get("seed")
    return record


def train(cfg: ModelConfig, resume: bool = False, base: str | None = None,
          out_dir: Path | None = None, train_ex: list[Example] | None = None,
          val_ex: list[Example] | None = None, init_adapter: Path | None = None) -> dict:
    """`init_adapter` starts the LoRA weights from a trained adapter (a further pass with a
    fresh optimiser and schedule); a resumed checkpoint wins over it."""
    _seed_all(cfg.train.seed)
    out_dir = out_dir or cfg.adapter_path()
    if out_dir is None:
        raise ValueError(f"model {cfg.name} has no adapter folder configured")
    init: dict | None = None
    run_name = cfg.name
    if init_adapter:
        init = _init_record(init_adapter)  # read before out_dir is rewritten
        # a further pass keeps its own checkpoints, so `--resume` never mixes two passes
        run_name = f"{cfg.name}-from-{init.get('version') or init_adapter.name}"
    ckpt_dir = Path("checkpoints") / run_name
    train_ex = train_ex if train_ex is not None else load_split("train")
    val_ex = val_ex if val_ex is not None else load_split("val")
    tr = Trainer(cfg, out_dir, ckpt_dir, base)
    if resume and (ckpt_dir / "trainer_state.pt").exists():
        tr.load_checkpoint()
    elif init_adapter:
        tr.load_adapter_weights(init_adapter)
    bs = cfg.train.batch_size
    steps_per_epoch = math.ceil(len(train_ex) / bs)
    total = cfg.train.max_steps or math.ceil(cfg.train.epochs * steps_per_epoch)
    # a fixed, seeded order per epoch, so a resumed run sees the same batches
    order: list[int] = []
    for epoch in range(math.ceil(total / steps_per_epoch)):
        perm = list(range(len(train_ex)))
        random.Random(cfg.train.seed + epoch).shuffle(perm)
        order.extend(perm)
    log.info("%s: %d trainable params, %d steps (batch %d); checkpoints in %s",
             cfg.name, tr.n_trainable(), total, bs, ckpt_dir)
    tr.model.train()
    bar = tqdm(total=total, initial=tr.step, desc=f"train {cfg.name}", file=sys.stderr)
    stopped = "max_steps"
    stop_file = ckpt_dir / "STOP"  # `touch` it: the run ends at its next eval, checkpoint saved
    if resume and stop_file.exists():  # resumed only to write a killed run's record
        stop_file.unlink()  # consumed: the next --resume trains on
        stopped = "stop requested"
    while tr.step < total and stopped == "max_steps":
        batch = [train_ex[i] for i in order[tr.step * bs : (tr.step + 1) * bs]]
        for group in tr.optimizer.param_groups:
            group["lr"] = tr.lr_at(tr.step, total)
        loss = tr.loss(batch)
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for p in tr.model.parameters() if p.requires_grad], 1.0)
        tr.optimizer.step()
        tr.optimizer.zero_grad(set_to_none=True)
        tr.step += 1
        prev = tr.running_loss
        tr.running_loss = loss.item() if prev is None else 0.9 * prev + 0.1 * loss.item()
        bar.update(1)
        bar.set_postfix(loss=f"{tr.running_loss:.4f}")
        if tr.step % cfg.train.eval_every == 0 or tr.step == total:
            metrics, val_p = tr.evaluate(val_ex, cfg.batch_size)
            metrics.update(
                step=tr.step, train_loss=tr.running_loss,
                elapsed_s=tr.elapsed_before + time.time() - tr.started,
            )
            tr.history.append(metrics)
            rounded = {k: round(v, 4) for k, v in metrics.items()}
            log.info("step %d: %s", tr.step, json.dumps(rounded))
            if metrics["val_loss"] < tr.best_val - 1e-4:
                tr.best_val, tr.bad_evals = metrics["val_loss"], 0
                tr.model.save_pretrained(str(out_dir))
                compact_adapter(out_dir)
                val_y = np.array([ex.label for ex in val_ex])
                if len(set(val_y.tolist())) == 2:
                    fit_platt(val_y, val_p).save(out_dir)
            else:
                tr.bad_evals += 1
            stop_requested = stop_file.exists()  # read first: saving replaces the folder
            tr.save_checkpoint()
            if tr.bad_evals >= cfg.train.patience:
                stopped = "early_stopping"
                break
            if stop_requested:
                stopped = "stop requested"
                break
    bar.close()
    summary = {
        "model": cfg.name,
        "version": time.strftime("%Y%m%d-%H%M%S", time.gmtime()),  # two runs never share one
        "stopped": stopped,
        "steps": tr.step,
        "train_examples": len(train_ex),
        "val_examples": len(val_ex),
        "trainable_params": tr.n_trainable(),
        "best_val_loss": tr.best_val,
        "history": tr.history,
        "wall_time_s": round(tr.elapsed_before + time.time() - tr.started, 1),
        "peak_rss_gib": round(max(tr.peak_before, peak_rss_gib()), 2),
        "threads": torch.get_num_threads(),
        "lora": cfg.lora.model_dump(),
        "train": cfg.train.model_dump(),
        "max_length": cfg.max_length,
        "tail_share": cfg.tail_share,
    }
    if init:
        summary["init_adapter"] = init
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "training.json").write_text(json.dumps(summary, indent=2) + "\n")
    from finetune.card import write_model_card

    write_model_card(out_dir, summary)
    return summary


def fit_classical(cfg: ModelConfig, out_dir: Path | None = None,
                  train_ex: list[Example] | None = None,
                  val_ex: list[Example] | None = None) -> dict:
    """TF-IDF + logistic regression: fit on train, choose C on val, save as plain arrays."""
    from tools.classifier.classical import fit_tfidf

    out_dir = out_dir or cfg.adapter_path()
    if out_dir is None:
        raise ValueError(f"model {cfg.name} has no adapter folder configured")
    train_ex = train_ex if train_ex is not None else load_split("train")
    val_ex = val_ex if val_ex is not None else load_split("val")
    model = fit_tfidf([e.text for e in train_ex], [e.label for e in train_ex],
                      [e.text for e in val_ex], [e.label for e in val_ex], seed=cfg.train.seed)
    model.meta.update(model=cfg.name, peak_rss_gib=round(peak_rss_gib(), 2),
                      threads=torch.get_num_threads())
    model.save(out_dir)
    return model.meta


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="default: the configured classifier")
    parser.add_argument("--resume", action="store_true",
                        help="continue from checkpoints/<model> "
                        "(a further pass: checkpoints/<model>-from-<version>)")
    parser.add_argument("--max-steps", type=int, default=None)
    parser.add_argument("--lr", type=float, default=None, help="override the model's train.lr")
    parser.add_argument("--seed", type=int, default=None,
                        help="override train.seed (initialisation and batch order)")
    parser.add_argument("--init-adapter", type=Path, default=None,
                        help="start from this adapter's LoRA weights: a further pass over the "
                             "train split with a fresh optimiser and schedule")
    parser.add_argument("--output", type=Path, default=None,
                        help="adapter folder (default: the model's `adapter`); keeps a trial "
                             "run from replacing the committed adapter")
    args = parser.parse_args(argv)
    args.model = args.model or load_settings().classifier.model
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    try:
        cfg = load_model_config(args.model)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    init = args.init_adapter
    adapter_files = ("adapter_config.json", "adapter_model.safetensors")
    if init and not all((init / f).exists() for f in adapter_files):
        print(f"error: --init-adapter {init}: no saved LoRA adapter there "
              "(adapter_config.json and adapter_model.safetensors)", file=sys.stderr)
        return 2
    overrides = {k: v for k, v in (("max_steps", args.max_steps), ("lr", args.lr),
                                   ("seed", args.seed)) if v is not None}
    if overrides:
        cfg = cfg.model_copy(update={"train": cfg.train.model_copy(update=overrides)})
    if cfg.kind == "keyword-rule":
        print(f"{cfg.name} is a fixed rule: there is nothing to train", file=sys.stderr)
        return 2
    if cfg.kind == "tfidf-logreg":
        summary = fit_classical(cfg)
        print(json.dumps({k: v for k, v in summary.items() if k != "history"}, indent=2))
        return 0
    try:
        summary = train(cfg, resume=args.resume, out_dir=args.output, init_adapter=init)
    except AdapterMismatch as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(json.dumps({k: v for k, v in summary.items() if k != "history"}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
