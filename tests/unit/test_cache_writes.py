"""Cache pickles written by many processes at once (API workers starting together) are
never torn: each writer has its own temporary file, then an atomic rename."""

from __future__ import annotations

import pickle
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tools.diseases.lexicon import write_pickle

pytestmark = pytest.mark.unit


def test_concurrent_writers_leave_one_whole_file_and_no_temporaries(tmp_path: Path) -> None:
    path = tmp_path / "cache" / "vocab-abc.pkl"
    payloads = [list(range(k, k + 200_000)) for k in range(8)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda p: write_pickle(path, p), payloads * 3))
    with path.open("rb") as fh:
        assert pickle.load(fh) in payloads
    assert sorted(f.name for f in path.parent.iterdir()) == [path.name]
