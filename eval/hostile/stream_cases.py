"""Hostile cases for the Redis Streams workers: every payload through produce -> work ->
collect, poisoned and malformed entries, two producers on one prefix, impossible options."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

from eval.hostile.harness import (
    GOOD_AFTER,
    GOOD_BEFORE,
    Case,
    CaseFailed,
    Harness,
    Outcome,
    Row,
    check,
    check_error_line,
    check_records,
)
from eval.hostile.payloads import PAYLOADS, hostile_row, read_output, write_csv_module

_prefixes = itertools.count()


def _stream(h: Harness, name: str) -> tuple[list[str], Any, Any]:
    from graph.stream import Keys, connect

    if h.redis_url is None:
        raise CaseFailed("no redis-server for the stream cases")
    prefix = f"hostile{next(_prefixes)}-{name}"
    return ["--redis-url", h.redis_url, "--prefix", prefix], connect(h.redis_url), Keys(prefix)


def _work(h: Harness, client: Any, keys: Any, **config: Any) -> Any:
    from graph.stream import Worker, WorkerConfig

    settings = {"block_ms": 50, "exit_when_idle_s": 0.3, "consumer": "hostile", **config}
    worker = Worker(client, keys, h.pipeline, WorkerConfig(**settings))
    worker.run()
    return worker


def _produce(h: Harness, base: list[str], source: Path) -> None:
    code, err = h.cli([*base, "produce", "--input", str(source)], module="graph.stream")
    check(code == 0, f"produce: exit {code}: {err[-200:]}")


def _collect(h: Harness, base: list[str], folder: Path, code_expected: int = 0) -> list[dict]:
    out = folder / "results.jsonl"
    code, err = h.cli([*base, "collect", "--output", str(out)], module="graph.stream")
    check(code == code_expected, f"collect: exit {code}: {err[-200:]}")
    return read_output(out)


def payload_case(payload: str) -> Case:
    row = hostile_row(payload)
    kind = "row_status" if row.status.startswith("error") else "record"

    def run(h: Harness) -> Outcome:
        base, client, keys = _stream(h, payload)
        folder = h.folder(f"stream-{payload}")
        rows = [GOOD_BEFORE, row, GOOD_AFTER]
        _produce(h, base, write_csv_module(folder, rows))
        _work(h, client, keys)
        return Outcome(kind, True, check_records(_collect(h, base, folder), rows))

    return Case(f"stream/{payload}", "stream", f"{payload} through produce, work and collect",
                kind, run)


def _poisoned(h: Harness) -> Outcome:
    from core.io import build_rows
    from graph.stream import produce

    base, client, keys = _stream(h, "poison")
    rows = [GOOD_BEFORE, GOOD_AFTER]
    produce(client, keys, build_rows({"id": r.id, "title": r.title, "abstract": r.abstract}
                                     for r in rows))
    raw = type(client)(connection_pool=type(client.connection_pool)(
        **{**client.connection_pool.connection_kwargs, "decode_responses": False}))
    poison = raw.xadd(keys.abstracts, {b"abstract_id": b"bad\xff\xfe", b"title": b"\xc3("}).decode()
    first = _work(h, client, keys, batch_size=8)
    check(first.committed == 2, f"{first.committed} of the 2 good entries answered")
    check(first.pending_here() == 1, "the poisoned entry should stay pending once")
    second = _work(h, client, keys, claim_idle_ms=0, max_deliveries=1, consumer="rescuer")
    check(second.dead_lettered == 1, f"dead-lettered {second.dead_lettered}")
    records = _collect(h, base, h.folder("poison"))
    ids = [r["abstract_id"] for r in records]
    check(ids[:2] == ["good-before", "good-after"], f"IDs {ids}")
    check(records[2]["status"].startswith("error: dead-lettered: not valid UTF-8"),
          f"status {records[2]['status']}")
    check(client.xpending(keys.abstracts, keys.group)["pending"] == 0, "entries still pending")
    return Outcome("row_status", True, f"good entries answered at once; {poison} dead-lettered "
                                       f"as {ids[2]!r}")


def _two_producers(given: bool) -> Case:
    def run(h: Harness) -> Outcome:
        base, client, keys = _stream(h, "producers")
        folder = h.folder("producers")
        pid = "p1" if given else None
        first = [Row(pid, "Lung cancer", "NSCLC is a lung cancer.", label="Cancer")]
        second = [Row(pid, "Asthma in children", "Steroids.", label="Non-Cancer")]
        if not given:  # same text, no IDs: the same content hash
            second = [Row(None, "Lung cancer", "NSCLC is a lung cancer.", label="Cancer")]
        (folder / "a").mkdir()
        (folder / "b").mkdir()
        _produce(h, base, write_csv_module(folder / "a", first))
        _produce(h, base, write_csv_module(folder / "b", second))
        _work(h, client, keys)
        records = _collect(h, base, folder)
        check(len(records) == 1, f"{len(records)} records for one ID")
        return Outcome("record", True, check_records(records, first, given_ids=given) +
                       "; the second producer's row was queued as a duplicate error")

    what = "the same given ID for different texts" if given else "rows without IDs, same text"
    return Case(f"stream/two-producers-{'given' if given else 'generated'}-ids", "stream",
                f"two producers, {what}", "record", run)


def _direct_entry(fields: dict, status: str, description: str, name: str) -> Case:
    def run(h: Harness) -> Outcome:
        from graph.stream import ensure_group

        base, client, keys = _stream(h, name)
        ensure_group(client, keys)
        client.xadd(keys.abstracts, fields)
        _work(h, client, keys, claim_idle_ms=0, max_deliveries=1)
        [record] = _collect(h, base, h.folder(name))
        check(record["status"].startswith(status), f"status {record['status']}")
        if status == "ok":
            row = Row(fields["abstract_id"], fields["title"], fields["abstract"], label="Cancer")
            check_records([record], [row])
        return Outcome("record" if status == "ok" else "row_status", True,
                       f"{record['abstract_id']}: {record['status'][:80]}")

    return Case(f"stream/{name}", "stream", description,
                "record" if status == "ok" else "row_status", run)


def _collect_wait(h: Harness) -> Outcome:
    from core.io import build_rows
    from graph.stream import produce

    base, client, keys = _stream(h, "wait")
    produce(client, keys, build_rows([{"id": "w1", "title": "Melanoma"}]))
    out = h.folder("wait") / "r.jsonl"
    code, err = h.cli([*base, "collect", "--output", str(out), "--wait", "0.2"],
                      module="graph.stream")
    return Outcome("error_line", True, check_error_line(code, err, "no result yet"))


def _option(name: str, args: list[str], needle: str) -> Case:
    def run(h: Harness) -> Outcome:
        # a worker that starts anyway stops after 1 idle second (and the case fails on exit 0)
        idle = ["--exit-when-idle", "1", "--config", str(h.config)] if args[0] == "work" else []
        code, err = h.cli(["--redis-url", h.redis_url or "redis://127.0.0.1:1/0",
                           "--prefix", f"option-{name}", *args, *idle], module="graph.stream")
        return Outcome("error_line", True, check_error_line(code, err, needle))

    return Case(f"stream/option-{name}", "stream", f"`{' '.join(args)}` is refused at start",
                "error_line", run)


def _produce_twice(h: Harness) -> Outcome:
    base, client, keys = _stream(h, "twice")
    folder = h.folder("twice")
    rows = [GOOD_BEFORE, GOOD_AFTER]
    source = write_csv_module(folder, rows)
    _produce(h, base, source)
    _produce(h, base, source)
    _work(h, client, keys)
    records = _collect(h, base, folder)
    return Outcome("record", True, check_records(records, rows) + "; the re-queued rows' "
                   "duplicate errors did not replace them")


def cases() -> list[Case]:
    found = [payload_case(p) for p in PAYLOADS]
    found += [
        Case("stream/poisoned-entry", "stream", "an entry that is not valid UTF-8 beside good ones",
             "row_status", _poisoned),
        _two_producers(given=True),
        _two_producers(given=False),
        _direct_entry({"abstract_id": "x1", "title": "Melanoma\u2028of the skin",
                       "abstract": "Melanoma\x85cells."}, "ok",
                      "an entry XADDed by hand with U+2028 and NEL "
                      "(the worker applies the contract)",
                      "unproduced-separators"),
        _direct_entry({"title": "no id"}, "error: dead-lettered: malformed",
                      "an entry without abstract_id", "entry-without-id"),
        _direct_entry({"abstract_id": "n1", "title": "Melanoma", "abstract": "x", "notes": "{oops"},
                      "ok", "an entry whose notes field is not JSON", "entry-bad-notes"),
        _direct_entry({"abstract_id": "n2", "title": "Melanoma", "abstract": "x" * 100_001},
                      "error: abstract too long", "an over-cap entry XADDed by hand",
                      "entry-over-cap"),
        Case("stream/collect-wait-missing", "stream", "collect --wait while results are missing",
             "error_line", _collect_wait),
        Case("stream/produce-twice", "stream", "the same file produced twice", "record",
             _produce_twice),
        _option("batch-size-0", ["work", "--batch-size", "0"], "--batch-size"),
        _option("batch-size-negative", ["work", "--batch-size", "-1"], "--batch-size"),
        _option("max-deliveries-0", ["work", "--max-deliveries", "0"], "--max-deliveries"),
        _option("block-0", ["work", "--block", "0"], "--block"),
        _option("claim-idle-negative", ["work", "--claim-idle", "-1"], "--claim-idle"),
        _option("threads-0", ["work", "--threads", "0"], "--threads"),
        _option("produce-limit-negative", ["produce", "--input", "x.csv", "--limit", "-1"],
                "--limit"),
        _option("collect-wait-negative", ["collect", "--output", "x.jsonl", "--wait", "-5"],
                "--wait"),
    ]
    return found
