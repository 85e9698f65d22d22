"""What every hostile case runs against: the CLI in-process, the API through TestClient and the
stream workers on a throw-away redis-server, all on the keyword-rule model with the dictionary
disease route (seconds for the whole sweep), plus the checks a record must pass.

A case's outcome is one of three kinds, each checked, never assumed:
- `record`: the right record (ID, order, status, label, text and offsets);
- `row_status`: the row is reported with an error status, its neighbours are untouched;
- `error_line`: one clear `error:` line and a non-zero exit (or a 4xx), no traceback.
Anything else (a traceback, a 500, a lost, split, swapped or mixed record) fails the case.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from core.contract import clean_text

Kind = str  # "record" | "row_status" | "error_line" (a failed run: "failed check" | "exception")

LIGHT_CONFIG: dict[str, Any] = {
    "classifier": {"model": "keyword-rule"},
    "diseases": {"routes": ["dictionary"]},
    "verifier": {"ladder": [{"view": "abstract_first", "prompt": "definition"}]},
}


@dataclass
class Outcome:
    kind: Kind
    ok: bool
    detail: str


@dataclass
class Case:
    name: str
    surface: Literal["cli", "api", "stream"]
    description: str
    expect: Kind
    run: Callable[[Harness], Outcome]


class CaseFailed(AssertionError):
    """A check failed; the message says which."""


def check(condition: bool, message: str) -> None:
    if not condition:
        raise CaseFailed(message)


@dataclass
class Row:
    """One input row and what its record must say."""

    id: Any  # a string, None (generated) or, to test the types check, anything else
    title: Any
    abstract: Any
    status: str = "ok"  # the record's status must start with this
    label: str | None = None  # the predicted label, when it is known


GOOD_BEFORE = Row("good-before", "Lung cancer screening", "Non-small cell lung cancer is common.",
                  label="Cancer")
GOOD_AFTER = Row("good-after", "Asthma in children", "Inhaled steroids reduce attacks.",
                 label="Non-Cancer")


def check_records(records: list[dict], rows: list[Row], given_ids: bool = True) -> str:
    """The records are exactly the rows: IDs in order and once each, statuses, labels, and
    offsets that index the record's text (or the input, when the contract changed nothing)."""
    ids = [r.get("abstract_id") for r in records]
    check(len(records) == len(rows), f"{len(rows)} rows gave {len(records)} records: {ids[:8]}")
    unique = [r.get("abstract_id") for r in records
              if not r["status"].startswith("error: duplicate abstract_id")]
    check(len(set(unique)) == len(unique), f"an ID appears twice: {ids}")
    for record, row in zip(records, rows, strict=True):
        if given_ids and row.id is not None:
            check(record["abstract_id"] == row.id.strip(),
                  f"record {record['abstract_id']!r} where {row.id!r} was given")
        check(record["status"].startswith(row.status),
              f"{record['abstract_id']}: status {record['status']!r}, expected {row.status!r}")
        if row.label is not None:
            check(record["predicted_labels"] == [row.label],
                  f"{record['abstract_id']}: label {record['predicted_labels']}, "
                  f"expected {row.label}")
        if record["status"].startswith("error"):
            continue
        expected = {name: clean_text(raw, name)[0] for name, raw in
                    (("title", row.title), ("abstract", row.abstract))}
        text = record.get("text")
        if text is None:
            check(expected == {"title": row.title or "", "abstract": row.abstract or ""},
                  f"{record['abstract_id']}: the contract changed the text but the record "
                  "does not carry it")
            text = expected
        check(text == expected, f"{record['abstract_id']}: text {text!r} != {expected!r}")
        spans = [*record["disease_mentions"], *record["citations"]["citations"]]
        for span in spans:
            got = text[span["field"]][span["start"] : span["end"]]
            want = span.get("text", span.get("raw"))
            check(got == want, f"{record['abstract_id']}: offsets {span['start']}:{span['end']} "
                               f"give {got!r}, not {want!r}")
    return f"{len(records)} records, IDs in order, statuses {[r['status'][:24] for r in records]}"


def check_error_line(code: int, err: str, *needles: str) -> str:
    check(code != 0, f"exit {code}, expected non-zero")
    check("Traceback" not in err, "a traceback reached the user")
    lines = [line for line in err.strip().splitlines() if "error: " in line]
    check(len(lines) >= 1, f"no error line in {err.strip()[-300:]!r}")
    line = lines[-1]
    for needle in needles:
        check(needle in line, f"{needle!r} not in {line!r}")
    return f"exit {code}: {line[:160]}"


@dataclass
class Harness:
    """Shared by the cases of one sweep (or one test module)."""

    root: Path
    redis_url: str | None = None
    _names: Iterator[int] = field(default_factory=itertools.count)
    _api: Any = None
    _stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)
    _pipeline: Any = None

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.config = self.write_config(LIGHT_CONFIG, "light")

    def write_config(self, data: dict, name: str) -> Path:
        path = self.root / f"{name}.yaml"
        data = {**data, "run": {"checkpoint_db": str(self.root / "checkpoints.sqlite")}}
        path.write_text(yaml.safe_dump(data))
        return path

    def folder(self, name: str) -> Path:
        path = self.root / f"{next(self._names):03d}-{name}"
        path.mkdir(parents=True)
        return path

    def cli(self, args: list[str], module: str = "graph.run") -> tuple[int, str]:
        """Run a command line in-process: (exit code, stderr). A raised exception is reported
        as exit 99 with its traceback in stderr, so the checks fail it."""
        main = __import__(module, fromlist=["main"]).main
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            try:
                code = main(args)
            except SystemExit as exc:  # argparse
                code = exc.code if isinstance(exc.code, int) else 1
            except Exception:  # noqa: BLE001 - a traceback is the failure being looked for
                traceback.print_exc(file=err)
                code = 99
        return code, err.getvalue()

    def run(self, args: list[str]) -> tuple[int, str]:
        return self.cli([*args, "--config", str(self.config), "--no-report"])

    @property
    def settings(self) -> Any:
        from core.settings import load_settings

        return load_settings(self.config)

    @property
    def pipeline(self) -> Any:
        if self._pipeline is None:
            from graph.pipeline import Pipeline

            self._pipeline = Pipeline(self.settings)
            self._pipeline.warm_up()
        return self._pipeline

    def api(self) -> Any:
        """A TestClient on the app (models loaded), shared by the API cases."""
        if self._api is None:
            import time

            from fastapi.testclient import TestClient

            from graph.api import ApiSettings, create_app

            limits = {"max_batch": 8, "max_job_items": 8, "max_body_bytes": 1_000_000}
            # an older ApiSettings (the baseline sweep) may lack a limit: it runs without it
            api = ApiSettings.model_validate(
                {k: v for k, v in limits.items() if k in ApiSettings.model_fields})
            client = TestClient(create_app(api, self.settings), raise_server_exceptions=False)
            self._api = self._stack.enter_context(client)
            deadline = time.monotonic() + 120
            while self._api.get("/ready").status_code != 200:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"API not ready: {self._api.get('/ready').json()}")
                time.sleep(0.05)
        return self._api

    def close(self) -> None:
        self._stack.close()
