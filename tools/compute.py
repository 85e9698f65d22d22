"""Which float type torch computes in here: bf16 only where the hardware does bf16 natively.

On CPUs with AVX512-BF16 or AMX, bf16 matrix work runs several times faster than fp32. On a
CPU without them (AVX2 only), oneDNN emulates bf16 and it is ~70x slower than fp32 (measured:
1.3 vs 95.5 GFLOP/s on one core of an AVX2 EPYC, reports/classification/dtype.md), so every
torch model here (the MiniLM classifier and NER model, the Qwen torch backend, the chat
model) asks this module instead of assuming bf16.
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path

import torch

NATIVE_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str]:
    """The first CPU's feature flags (empty where /proc/cpuinfo is missing: not Linux)."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


OVERRIDE_ENV = "ONCOGRAPH_TORCH_DTYPE"  # auto (default) | bfloat16 | float32


@cache
def native_bf16() -> bool:
    """Whether bf16 is the fast float type on the device torch computes on
    (ONCOGRAPH_TORCH_DTYPE=bfloat16|float32 decides instead, for benchmarks)."""
    forced = os.environ.get(OVERRIDE_ENV, "auto")
    if forced not in ("auto", "bfloat16", "float32"):
        raise ValueError(f"{OVERRIDE_ENV} must be auto, bfloat16 or float32, not {forced!r}")
    if forced != "auto":
        return forced == "bfloat16"
    if torch.cuda.is_available():
        return bool(torch.cuda.is_bf16_supported())
    return bool(NATIVE_BF16_FLAGS & cpu_flags())


def compute_dtype() -> torch.dtype:
    """bf16 where it is native, else fp32 (the weights load in this type)."""
    return torch.bfloat16 if native_bf16() else torch.float32


def autocast() -> torch.autocast:
    """CPU bf16 autocast where bf16 is native; a no-op context elsewhere."""
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=native_bf16())
