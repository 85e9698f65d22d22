"""Fit (or refit) an adapter's Platt calibration on the val split.

    python -m eval.calibrate --model minilm
    python -m eval.calibrate --model qwen2.5-1.5b --backend ctranslate2

Training fits it already from the val scores of the best checkpoint; this command does it
for an adapter trained before that, or after the split changed. Val predictions are cached
under reports/classification/predictions/ like the test ones, so a refit is instant.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import get_args

from core.settings import Backend, ConfigError, load_model_config, load_settings
from eval.compare import REPORT_DIR, predict
from finetune.card import rewrite_model_card
from tools.classifier.calibration import Calibration, fit_platt
from tools.classifier.registry import SINGLE_VARIANT_KINDS


def calibrate(model: str, refresh: bool = False, out: Path = REPORT_DIR,
              backend: Backend | None = None) -> Calibration:
    """Fit on the val predictions (cached under `out`); the adapter's card quotes the new map.
    A non-torch `backend` gets its own map from its own val scores (calibration-<backend>.json)."""
    cfg = load_model_config(model)
    folder = cfg.adapter_path()
    if cfg.kind in SINGLE_VARIANT_KINDS or folder is None:
        raise ValueError(f"{cfg.name} ({cfg.kind}) has no LoRA adapter to calibrate")
    backend = backend or "torch"
    got = predict(model, "finetuned", "val", out, refresh, backend=backend)
    fitted_on = "val" if backend == "torch" else f"val/{backend}"
    calibration = fit_platt(got["y"], got.get("p_raw", got["p"]), fitted_on=fitted_on)
    calibration.save(folder, backend)
    if (folder / "training.json").exists():
        rewrite_model_card(folder)
    return calibration


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="default: the configured classifier")
    parser.add_argument("--refresh", action="store_true", help="re-run the model on val")
    parser.add_argument("--backend", choices=get_args(Backend), default=None,
                        help="fit the map of this inference engine (default: torch)")
    args = parser.parse_args(argv)
    args.model = args.model or load_settings().classifier.model
    try:
        calibration = calibrate(args.model, args.refresh, backend=args.backend)
    except (ConfigError, ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(calibration.__dict__))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
