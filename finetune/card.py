"""Model card written next to every trained adapter: data, hyperparameters, metrics, how to redo."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def _calibration_text(out_dir: Path) -> str:
    from tools.classifier.calibration import Calibration

    cal = Calibration.load(out_dir)
    if cal is None:
        return ""
    sign = "-" if cal.intercept < 0 else "+"
    return f"""## Calibration
`calibration.json`: Platt scaling P' = sigmoid({cal.slope:.3f} * logit(P) {sign} \
{abs(cal.intercept):.3f}),
fitted on the {cal.n} {cal.fitted_on} abstracts' scores of this adapter; the fine-tuned
classifier applies it (`python -m eval.calibrate --model <model>` refits it).
"""


def _clipping(summary: dict) -> str:
    share = summary.get("tail_share", 0.0)
    if not share:
        return " (the abstract's first tokens)"
    return (f" (a long abstract keeps its first tokens and, for {share:.0%} of its budget, "
            "its last: `tail_share` in the model config)")


def _further_pass(summary: dict) -> tuple[str, str]:
    """(training-run sentence, regenerate commands) for a pass started from another adapter."""
    init = summary.get("init_adapter")
    model = summary["model"]
    if not init:
        return "", (f"`python -m finetune.train --model {model}` "
                    "(add `--resume` to continue from `checkpoints/`).")
    total = (summary["wall_time_s"] + (init.get("wall_time_s") or 0)) / 60
    run = (f"This pass started from adapter `{init.get('version')}` ({init.get('steps')} steps, "
           f"best val loss {init.get('best_val_loss') or float('nan'):.4f}), "
           f"with a fresh optimiser and schedule; both passes together took {total:.1f} min.\n")
    regenerate = (
        f"Two passes: `python -m finetune.train --model {init.get('model') or model} "
        f"--seed {init.get('seed')} --output FIRST`, "
        f"then `python -m finetune.train --model {model} --init-adapter FIRST "
        f"--seed {summary['train']['seed']}` (add `--resume` to continue from `checkpoints/`).")
    return run, regenerate


def write_model_card(out_dir: Path, summary: dict) -> None:
    best: dict[str, Any] = min(summary["history"], key=lambda h: h["val_loss"], default={})
    rows = "\n".join(
        f"| {h['step']} | {h['train_loss']:.4f} | {h['val_loss']:.4f} | {h['val_accuracy']:.3f} "
        f"| {h['val_auc']:.4f} |"
        for h in summary["history"]
    )
    lora = summary["lora"]
    train = summary["train"]
    further, regenerate = _further_pass(summary)
    layers = (f"top {lora['top_layers']} layers only (backward stops there)"
              if lora.get("top_layers") else "all layers")
    nan = float("nan")
    text = f"""# {summary['model']} LoRA adapter (OncoGraph)

Cancer / Non-Cancer classifier for PubMed titles + abstracts. Version `{summary['version']}`.

## Data
Fixed stratified split of the 1000 labelled abstracts (`finetune/splits/`, made by
`python -m finetune.split`): {summary['train_examples']} train, {summary['val_examples']} val
(early stopping); the 200 test abstracts were not used. Text = `tools.preprocess.model_text`
(title + cleaned abstract, no PMID), clipped to {summary['max_length']} tokens{_clipping(summary)}.

## Hyperparameters
LoRA r={lora['r']}, alpha={lora['alpha']}, dropout={lora['dropout']}, \
targets {', '.join(lora['target_modules'])},
{layers};
AdamW lr {train['lr']}, batch {train['batch_size']}, warmup {train['warmup_ratio']}, linear decay,
gradient checkpointing {train['gradient_checkpointing']}, seed {train['seed']}.
Trainable parameters: {summary['trainable_params']:,}.

## Training run
Stopped by {summary['stopped']} after {summary['steps']} steps. The adapter saved here is the
checkpoint with the best val loss: step {best.get('step', '?')}, \
val loss {best.get('val_loss', nan):.4f}
(val accuracy {best.get('val_accuracy', nan):.3f}). \
Wall time {summary['wall_time_s'] / 60:.1f} min on
{summary['threads']} CPU threads, peak RSS {summary['peak_rss_gib']:.1f} GiB.
{further}
| step | train loss (EMA) | val loss | val accuracy | val AUC |
|---|---|---|---|---|
{rows}

{_calibration_text(out_dir)}
Test-split metrics: `reports/classification/` (`make classification-report`).

## Regenerate
{regenerate}
"""
    (out_dir / "README.md").write_text(text)


def rewrite_model_card(folder: Path) -> None:
    """Redo a trained adapter's card from its training.json (after a calibration refit, say)."""
    write_model_card(folder, json.loads((folder / "training.json").read_text()))


if __name__ == "__main__":  # python -m finetune.card adapters/<model>
    import sys

    rewrite_model_card(Path(sys.argv[1]))
