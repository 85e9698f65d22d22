"""Every case of the hostile-input sweep (eval/hostile) as a test: the CLI, the API and the
stream workers on the keyword-rule model, against a real redis-server."""

from __future__ import annotations

from collections import Counter

import pytest

from eval.hostile import all_cases, run_case
from eval.hostile.harness import Harness

CASES = all_cases()


@pytest.fixture(scope="module")
def harness(tmp_path_factory):
    from eval.bench_serving import local_redis

    with local_redis() as url:
        h = Harness(tmp_path_factory.mktemp("hostile"), url)
        yield h
        h.close()


def test_the_sweep_covers_every_surface():
    surfaces = Counter(case.surface for case in CASES)
    assert sum(surfaces.values()) >= 60
    assert min(surfaces.values()) >= 20, surfaces
    assert len({case.name for case in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_hostile_case(harness, case):
    result = run_case(harness, case)
    assert result["passed"], f"{result['outcome']}: {result['detail']}"
