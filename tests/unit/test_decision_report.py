"""The report's "graph before" row replays the old policy with its own re-query (MiniLM at
0.6), whatever re-query the configured ladder uses now."""

from __future__ import annotations

import numpy as np
import pytest

from eval.decision_data import Rows
from eval.decision_report import old_asked, old_policy
from tools.decision import Call, Evidence

pytestmark = pytest.mark.unit

FIRST = ("m", "title_and_abstract", "default")
NOW = ("keyword-rule", "title_and_abstract", "default")


def rows(first: list[float], concepts: list[int]) -> Rows:
    evidence = [Evidence(Call(*FIRST, p), None, tuple(f"C{j}" for j in range(c)), (), c)
                for p, c in zip(first, concepts, strict=True)]
    n = len(first)
    return Rows("synthetic", [str(k) for k in range(n)], np.zeros(n, int), np.array(first),
                np.full(n, 0.123), NOW, "m", evidence)


def test_the_old_verifier_asked_when_unsure_or_inconsistent() -> None:
    # sure Non-Cancer without concepts: not asked; unsure (0.55 is within logit(0.6)): asked;
    # sure Non-Cancer with a cancer concept: asked; sure Cancer with none: asked
    r = rows([0.02, 0.55, 0.02, 0.98], [0, 0, 2, 0])
    assert old_asked(r).tolist() == [False, True, True, True]


def test_the_old_policy_averages_its_own_requery_only_where_it_asked() -> None:
    r = rows([0.02, 0.02], [0, 1])
    before = old_policy(r, np.array([0.9, 0.9]))
    assert before.tolist() == pytest.approx([0.02, 0.46])  # not the current rung's 0.123
