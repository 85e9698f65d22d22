"""Quiet runs: library chatter goes to a log file, the user sees progress and the summary.

transformers prints load reports ("MISSING ... newly initialized") and progress bars for
every model it loads, and libraries raise FutureWarnings; a newcomer reads that as a broken
model. Everything logged or warned goes to the run's log file; `--verbose` also shows it.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure_logging(log_file: Path | None, verbose: bool = False) -> None:
    """Route logging, warnings and transformers' own output to `log_file` (and stderr
    when `verbose`). Call before any model loads."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    handlers: list[logging.Handler] = []
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_file, encoding="utf-8"))
    if verbose:
        handlers.append(logging.StreamHandler(sys.stderr))
    if not handlers:
        handlers.append(logging.NullHandler())
    logging.basicConfig(level=logging.INFO, format=FORMAT, handlers=handlers, force=True)
    logging.captureWarnings(True)  # warnings.warn -> the "py.warnings" logger -> the file
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:  # the keyword-rule path needs no transformers
        return
    hf_logging.disable_default_handler()  # its stderr handler prints the load reports
    hf_logging.enable_propagation()  # ... which now reach our handlers instead
    if not verbose:
        hf_logging.disable_progress_bar()  # "Loading weights: 100%" bars
