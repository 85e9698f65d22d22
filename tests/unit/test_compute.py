"""tools.compute: bf16 only where the hardware has it, fp32 elsewhere, an override."""

from __future__ import annotations

import pytest
import torch

from tools import compute

pytestmark = pytest.mark.unit

AVX2_ONLY = "processor\t: 0\nflags\t\t: fpu sse2 avx avx2 fma\n"
AVX512_BF16 = "processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_vnni avx512_bf16\n"


@pytest.fixture
def fresh(monkeypatch):
    compute.native_bf16.cache_clear()
    monkeypatch.delenv(compute.OVERRIDE_ENV, raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    yield monkeypatch
    compute.native_bf16.cache_clear()


def test_flags_are_read_from_the_first_flags_line(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text(AVX512_BF16 + "flags\t\t: something else\n")
    assert "avx512_bf16" in compute.cpu_flags(info)
    assert "something" not in compute.cpu_flags(info)
    assert compute.cpu_flags(tmp_path / "missing") == frozenset()


@pytest.mark.parametrize(("cpuinfo", "dtype"), [(AVX2_ONLY, torch.float32),
                                                 (AVX512_BF16, torch.bfloat16)])
def test_bf16_only_where_the_cpu_has_it(fresh, tmp_path, cpuinfo, dtype):
    info = tmp_path / "cpuinfo"
    info.write_text(cpuinfo)
    real = compute.cpu_flags
    fresh.setattr(compute, "cpu_flags", lambda: real(info))
    assert compute.compute_dtype() == dtype
    assert compute.autocast().fast_dtype == torch.bfloat16
    assert compute.autocast()._enabled is (dtype == torch.bfloat16)


def test_the_override_wins_and_a_wrong_value_is_an_error(fresh, tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text(AVX2_ONLY)
    real = compute.cpu_flags
    fresh.setattr(compute, "cpu_flags", lambda: real(info))
    fresh.setenv(compute.OVERRIDE_ENV, "bfloat16")
    assert compute.compute_dtype() == torch.bfloat16
    compute.native_bf16.cache_clear()
    fresh.setenv(compute.OVERRIDE_ENV, "fp16")
    with pytest.raises(ValueError, match="ONCOGRAPH_TORCH_DTYPE"):
        compute.native_bf16()
