"""The hostile-input sweep: `python -m eval.hostile` (make hostile) runs every case against the
CLI, the API and the stream workers and writes reports/trust/hostile.{json,md}; the test suite
runs the same cases (tests/test_hostile_sweep.py)."""

from __future__ import annotations

import signal
import time
import traceback

from eval.hostile.harness import Case, CaseFailed, Harness


def all_cases() -> list[Case]:
    from eval.hostile import api_cases, cli_cases, stream_cases

    return [*cli_cases.cases(), *api_cases.cases(), *stream_cases.cases()]


class CaseTimeout(Exception):
    """A case ran past its time: a hang counts as a failure, not as a stuck sweep."""


def _timeout(signum: int, frame: object) -> None:
    raise CaseTimeout("ran past the case time limit (a hang)")


def run_case(h: Harness, case: Case, timeout_s: float = 180) -> dict:
    """One case's row in the report: passed only when the expected kind of outcome happened
    and every check held, within `timeout_s` (main thread only: SIGALRM)."""
    start = time.perf_counter()
    previous = signal.signal(signal.SIGALRM, _timeout)
    signal.setitimer(signal.ITIMER_REAL, timeout_s)
    try:
        outcome = case.run(h)
        passed = outcome.ok and outcome.kind == case.expect
        kind, detail = outcome.kind, outcome.detail
    except CaseFailed as exc:
        passed, kind, detail = False, "failed check", str(exc)
    except Exception as exc:  # noqa: BLE001 - the report says what broke
        passed, kind = False, "exception"
        detail = f"{type(exc).__name__}: {exc} | {traceback.format_exc(limit=-2).strip()[-400:]}"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    return {"case": case.name, "surface": case.surface, "description": case.description,
            "expected": case.expect, "outcome": kind, "passed": passed, "detail": detail,
            "seconds": round(time.perf_counter() - start, 3)}
