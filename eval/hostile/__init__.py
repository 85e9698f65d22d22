"""The hostile-input sweep: `python -m eval.hostile` (make hostile) runs every case against the
CLI, the API and the stream workers and writes reports/trust/hostile.{json,md}; the test suite
runs the same cases (tests/test_hostile_sweep.py)."""

from __future__ import annotations

import time
import traceback

from eval.hostile.harness import Case, CaseFailed, Harness


def all_cases() -> list[Case]:
    from eval.hostile import api_cases, cli_cases, stream_cases

    return [*cli_cases.cases(), *api_cases.cases(), *stream_cases.cases()]


def run_case(h: Harness, case: Case) -> dict:
    """One case's row in the report: passed only when the expected kind of outcome happened
    and every check held."""
    start = time.perf_counter()
    try:
        outcome = case.run(h)
        passed = outcome.ok and outcome.kind == case.expect
        kind, detail = outcome.kind, outcome.detail
    except CaseFailed as exc:
        passed, kind, detail = False, "failed check", str(exc)
    except Exception as exc:  # noqa: BLE001 - the report says what broke
        passed, kind = False, "exception"
        detail = f"{type(exc).__name__}: {exc} | {traceback.format_exc(limit=-2).strip()[-400:]}"
    return {"case": case.name, "surface": case.surface, "description": case.description,
            "expected": case.expect, "outcome": kind, "passed": passed, "detail": detail,
            "seconds": round(time.perf_counter() - start, 3)}
