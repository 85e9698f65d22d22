"""Redis Streams workers: any number of processes, on any number of machines, share one queue.

    python -m graph.stream produce --input abstracts.csv
    python -m graph.stream work [--batch-size 8] [--exit-when-idle 30]
    python -m graph.stream collect --output results.jsonl [--wait 600]
    python -m graph.stream status

Delivery, end to end:
- `produce` appends one entry per abstract to `<prefix>:abstracts`; workers read it through
  the consumer group `<prefix>-workers` (XREADGROUP), a batch at a time, through `Pipeline`.
- A result is committed by one Lua script, atomic in Redis: if the entry is still pending it
  XADDs the record to `<prefix>:results` (field `abstract_id`) and only then XACKs it. A worker
  killed mid-batch commits nothing for that batch; a slow worker whose entry was taken over
  finds it already acknowledged and writes nothing: one result per entry, never two.
- Entries left pending by a dead worker for `--claim-idle` seconds are taken over (XAUTOCLAIM).
  After `--max-deliveries` deliveries an entry goes to `<prefix>:dead` and gets an error record,
  so a poison abstract cannot crash workers for ever and still ends with a result. An entry
  that is not valid UTF-8 is left pending while the rest of its batch is answered, and is
  dead-lettered the same way.
- IDs are unique per prefix: `produce` claims each ID in the set `<prefix>:ids` (SADD, atomic),
  so a second producer's row with a taken ID is queued as an error row and never swaps records
  with the first. Rows without an ID get a content hash (core.contract), the same on every
  producer. Both ends apply the input contract (core.io.build_rows).
- Durability: the results live in Redis; run it with `--appendonly yes --appendfsync always`
  (docker-compose.yml does) so an acknowledged result survives a Redis restart too.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import redis
from redis.typing import EncodableT, FieldT

from core.contract import dumps_record
from core.io import InputError, InputRow, build_rows, read_input
from core.settings import ConfigError, load_settings

log = logging.getLogger("oncograph.stream")

DEFAULT_URL = "redis://127.0.0.1:6379/0"

# KEYS[1] input stream, KEYS[2..] output streams. ARGV: group, entry id, then for each output
# stream a count n followed by n field/value items. Writes happen only while the entry is
# still pending, and the XACK comes after the writes.
_COMMIT = """
local pending = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[2], ARGV[2], 1)
if #pending == 0 then return 0 end
local i = 3
for k = 2, #KEYS do
  local n = tonumber(ARGV[i])
  local args = {'XADD', KEYS[k], '*'}
  for j = 1, n do args[#args + 1] = ARGV[i + j] end
  redis.call(unpack(args))
  i = i + n + 1
end
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
return 1
"""


@dataclass(frozen=True)
class Keys:
    """Stream and group names under one prefix, so several corpora can share a Redis."""

    prefix: str = "oncograph"

    @property
    def abstracts(self) -> str:
        return f"{self.prefix}:abstracts"

    @property
    def results(self) -> str:
        return f"{self.prefix}:results"

    @property
    def dead(self) -> str:
        return f"{self.prefix}:dead"

    @property
    def group(self) -> str:
        return f"{self.prefix}-workers"

    @property
    def ids(self) -> str:
        return f"{self.prefix}:ids"


# redis-py types a reply as bytes | str whatever the client's decode_responses, and RESP2 | RESP3;
# these are the (RESP2) shapes our clients get: `connect`'s decodes, `Worker.raw` does not
Entry = tuple[str, dict[str, str]]
RawEntry = tuple[bytes, dict[bytes, bytes]]
RawStreamReply = list[tuple[bytes, list[RawEntry]]]  # XREADGROUP: per stream, its entries
PendingRow = dict[str, Any]  # XPENDING's message_id (str), consumer, times_delivered (int), ...


def connect(url: str) -> redis.Redis:
    client = redis.Redis.from_url(url, decode_responses=True, socket_connect_timeout=5)
    client.ping()
    return client


def ensure_group(client: redis.Redis, keys: Keys) -> None:
    """The group starts at the stream's beginning, so entries produced earlier are read."""
    try:
        client.xgroup_create(keys.abstracts, keys.group, id="0", mkstream=True)
    except redis.ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


def produce(client: redis.Redis, keys: Keys, rows: list[InputRow], chunk: int = 500) -> int:
    """Queue rows; a row whose ID is already queued under this prefix becomes an error row."""
    ensure_group(client, keys)
    for i in range(0, len(rows), chunk):
        batch = rows[i : i + chunk]
        claim = client.pipeline(transaction=False)
        for row in batch:
            if not row.error:
                claim.sadd(keys.ids, row.abstract_id)
        claimed = iter(claim.execute())
        pipe = client.pipeline(transaction=False)
        for row in batch:
            fields: dict[FieldT, EncodableT] = {
                "abstract_id": row.abstract_id, "title": row.title, "abstract": row.abstract,
            }
            error = row.error or (
                None if next(claimed) else
                f"duplicate abstract_id {row.abstract_id!r}: already queued on {keys.abstracts}"
            )
            if error:
                fields["error"] = error
            if row.notes:
                fields["notes"] = json.dumps(row.notes, ensure_ascii=False)
            if row.changed:
                fields["changed"] = "1"
            pipe.xadd(keys.abstracts, fields)
        pipe.execute()
    return len(rows)


def _decode(fields: dict[bytes, bytes]) -> dict[str, str] | None:
    """An entry's fields as text; None when any is not valid UTF-8 (a poisoned entry)."""
    try:
        return {k.decode("utf-8"): v.decode("utf-8") for k, v in fields.items()}
    except UnicodeDecodeError:
        return None


def _entry_row(fields: dict[str, str]) -> dict[str, Any]:
    """The raw item for the input contract; the worker re-applies it to whatever it reads."""
    try:
        notes = json.loads(fields.get("notes") or "[]")
    except ValueError:
        notes = ["notes field of the entry was not JSON"]
    return {"id": fields["abstract_id"], "title": fields.get("title", ""),
            "abstract": fields.get("abstract", ""), "error": fields.get("error") or None,
            "notes": notes if isinstance(notes, list) else [],
            "changed": bool(fields.get("changed"))}


@dataclass
class WorkerConfig:
    batch_size: int = 8
    block_ms: int = 2_000
    claim_idle_ms: int = 120_000  # well above one batch's processing time
    max_deliveries: int = 3
    exit_when_idle_s: float | None = None  # None: run until SIGTERM
    consumer: str = field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}")

    def __post_init__(self) -> None:
        """Options that cannot work are refused at start, not found out mid-queue."""
        problems = [
            f"{name} must be {rule}, got {value}"
            for name, value, ok, rule in (
                ("batch size", self.batch_size, self.batch_size >= 1, "1 or more"),
                ("block", self.block_ms, self.block_ms >= 1, "above 0 (0 blocks for ever)"),
                ("claim idle", self.claim_idle_ms, self.claim_idle_ms >= 0, "0 or more"),
                ("max deliveries", self.max_deliveries, self.max_deliveries >= 1, "1 or more"),
                ("exit when idle", self.exit_when_idle_s,
                 self.exit_when_idle_s is None or self.exit_when_idle_s >= 0, "0 or more"),
                ("consumer", self.consumer, bool(self.consumer.strip()), "a name"),
            )
            if not ok
        ]
        if problems:
            raise ValueError("; ".join(problems))


class Worker:
    """Reads batches from the group, runs them through the pipeline, commits atomically."""

    def __init__(self, client: redis.Redis, keys: Keys, pipeline: Any, config: WorkerConfig):
        self.client, self.keys, self.pipeline, self.config = client, keys, pipeline, config
        # entries are read as bytes and decoded one by one: one undecodable entry must not
        # make the whole read fail (and its batch stay pending for ever)
        kwargs = client.connection_pool.connection_kwargs
        self.raw = redis.Redis(connection_pool=redis.ConnectionPool(
            connection_class=client.connection_pool.connection_class,
            **{**kwargs, "decode_responses": False},
        ))
        self._commit = client.register_script(_COMMIT)
        self._claim_cursor = "0-0"
        self.stopping = False
        self.committed = 0
        self.dead_lettered = 0
        self.undecodable = 0  # deliveries of entries that were not valid UTF-8

    def _claim(self) -> list[tuple[str, dict | None]]:
        """Entries another (dead) consumer left pending for longer than the claim idle time."""
        reply = self.raw.xautoclaim(
            self.keys.abstracts, self.keys.group, self.config.consumer,
            min_idle_time=self.config.claim_idle_ms, start_id=self._claim_cursor,
            count=self.config.batch_size,
        )
        self._claim_cursor = reply[0].decode()
        return [(entry_id.decode(), _decode(fields)) for entry_id, fields in reply[1]
                if fields is not None]

    def _read(self) -> list[tuple[str, dict | None]]:
        reply = cast(RawStreamReply | None, self.raw.xreadgroup(
            self.keys.group, self.config.consumer, {self.keys.abstracts: ">"},
            count=self.config.batch_size, block=self.config.block_ms,
        ))
        return [(entry_id.decode(), _decode(fields))
                for _, entries in reply or [] for entry_id, fields in entries]

    def _deliveries(self, ids: list[str]) -> dict[str, int]:
        order = sorted(ids, key=lambda i: tuple(int(x) for x in i.split("-")))
        rows = cast(list[PendingRow], self.client.xpending_range(
            self.keys.abstracts, self.keys.group, min=order[0], max=order[-1],
            count=10 * len(ids) + 100, consumername=self.config.consumer,
        ))
        return {r["message_id"]: r["times_delivered"] for r in rows}

    def _commit_entry(
        self, entry_id: str, outputs: list[tuple[str, dict]], client: Any = None
    ) -> Any:
        """Run the commit script (on `client`, e.g. a pipeline, when given): 1 if written."""
        argv: list[Any] = [self.keys.group, entry_id]
        for _, fields in outputs:
            items = [x for kv in fields.items() for x in kv]
            argv += [len(items), *items]
        keys = [self.keys.abstracts, *(stream for stream, _ in outputs)]
        return self._commit(keys=keys, args=argv, client=client)

    def _result_fields(self, entry_id: str, record: dict) -> dict:
        return {
            "abstract_id": record["abstract_id"], "entry": entry_id,
            "worker": self.config.consumer, "record": dumps_record(record),
        }

    def _raw_fields(self, entry_id: str) -> dict[str, str]:
        """An undecodable entry's fields, decoded with U+FFFD, for its dead letter."""
        entries = cast(list[RawEntry], self.raw.xrange(self.keys.abstracts, min=entry_id,
                                                       max=entry_id))
        fields = entries[0][1] if entries else {}
        return {k.decode("utf-8", "replace"): v.decode("utf-8", "replace")
                for k, v in fields.items()}

    def _dead_letter(self, entry_id: str, fields: dict | None, reason: str) -> None:
        from graph.pipeline import error_record

        if fields is None:
            fields = self._raw_fields(entry_id)
        abstract_id = fields.get("abstract_id") or f"entry-{entry_id}"
        record = error_record(abstract_id, f"dead-lettered: {reason}")
        dead = {**fields, "entry": entry_id, "reason": reason, "worker": self.config.consumer}
        result = self._result_fields(entry_id, record)
        outputs = [(self.keys.dead, dead), (self.keys.results, result)]
        if self._commit_entry(entry_id, outputs):
            self.dead_lettered += 1
            log.warning("entry %s (%s) dead-lettered: %s", entry_id, abstract_id, reason)

    def step(self) -> int:
        """One batch: claimed entries first, else new ones. Returns entries handled."""
        entries = self._claim()
        claimed = bool(entries)
        if not entries:
            entries = self._read()
        if not entries:
            return 0
        deliveries = self._deliveries([e for e, _ in entries]) if claimed else {}
        todo: list[tuple[str, dict]] = []
        for entry_id, fields in entries:
            if fields is not None and not fields.get("abstract_id"):
                self._dead_letter(entry_id, fields, "malformed entry: no abstract_id field")
            elif deliveries.get(entry_id, 1) > self.config.max_deliveries:
                why = "not valid UTF-8; " if fields is None else ""
                self._dead_letter(
                    entry_id, fields,
                    f"{why}gave up after {deliveries[entry_id] - 1} failed deliveries",
                )
            elif fields is None:
                # left pending: retried after the claim idle time, then dead-lettered
                self.undecodable += 1
                log.warning("entry %s is not valid UTF-8; left pending", entry_id)
            else:
                todo.append((entry_id, _entry_row(fields)))
        if todo:
            rows = build_rows(item for _, item in todo)  # the input contract, at the worker too
            # a failure here leaves the batch pending: it is retried after the claim idle time
            records = self.pipeline.process(rows, run_id=f"stream-{self.config.consumer}")
            pipe = self.client.pipeline(transaction=False)  # one round trip for the batch
            for (entry_id, _), record in zip(todo, records, strict=True):
                result = self._result_fields(entry_id, record)
                self._commit_entry(entry_id, [(self.keys.results, result)], client=pipe)
            self.committed += sum(1 for ok in pipe.execute() if ok)
        return len(entries)

    def pending_here(self) -> int:
        """Entries this consumer holds unacknowledged (e.g. undecodable ones not yet dead)."""
        if not self.client.exists(self.keys.abstracts):
            return 0
        return len(self.client.xpending_range(
            self.keys.abstracts, self.keys.group, "-", "+", 10_000, self.config.consumer))

    def run(self) -> int:
        """Until SIGTERM/SIGINT (after the current batch) or `exit_when_idle_s` with no work."""
        # registered up front so `status` (and the benchmark) see a worker that is ready
        self.client.xgroup_createconsumer(
            self.keys.abstracts, self.keys.group, self.config.consumer
        )
        idle_since = time.monotonic()
        while not self.stopping:
            try:
                handled = self.step()
            except redis.ConnectionError as exc:
                log.warning("redis unreachable (%s); retrying in 1 s", exc)
                time.sleep(1)
                continue
            except Exception:  # noqa: BLE001 - the batch stays pending and is retried later
                log.exception("batch failed; its entries stay pending for a retry")
                time.sleep(1)
                handled = 0
            if handled:
                idle_since = time.monotonic()
            elif (
                self.config.exit_when_idle_s is not None
                and time.monotonic() - idle_since >= self.config.exit_when_idle_s
            ):
                break
        return self.committed


def iter_results(client: redis.Redis, keys: Keys, page: int = 1_000) -> Iterator[dict]:
    start = "-"
    while True:
        entries = cast(list[Entry], client.xrange(keys.results, min=start, max="+", count=page))
        for _, fields in entries:
            yield fields
        if len(entries) < page:
            return
        start = "(" + entries[-1][0]


def group_state(client: redis.Redis, keys: Keys) -> dict[str, int]:
    """Entries produced, not yet delivered (lag) and delivered but unacknowledged (pending)."""
    if not client.exists(keys.abstracts):
        return {"produced": 0, "lag": 0, "pending": 0, "consumers": 0}
    groups = {g["name"]: g for g in client.xinfo_groups(keys.abstracts)}
    group = groups.get(keys.group, {})
    return {
        "produced": client.xlen(keys.abstracts),
        "lag": int(group.get("lag") or 0),
        "pending": int(group.get("pending") or 0),
        "consumers": int(group.get("consumers") or 0),
    }


def collect(client: redis.Redis, keys: Keys, output: Path) -> dict[str, int]:
    """One record per abstract_id: the latest, except that an error never replaces a result
    (an abstract queued twice, once rejected as a duplicate, keeps its real record)."""
    by_id: dict[str, tuple[bool, str]] = {}
    entries = 0
    for fields in iter_results(client, keys):
        entries += 1
        failed = json.loads(fields["record"])["status"].startswith("error")
        previous = by_id.get(fields["abstract_id"])
        if previous is None or not failed or previous[0]:
            by_id[fields["abstract_id"]] = (failed, fields["record"])
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_suffix(output.suffix + ".tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        for _, record in by_id.values():
            fh.write(record + "\n")
    tmp.replace(output)
    errors = sum(1 for failed, _ in by_id.values() if failed)
    return {"results": len(by_id), "result_entries": entries, "errors": errors,
            "dead_lettered": client.xlen(keys.dead)}


# ── command line ─────────────────────────────────────────────────────────────────────────


def _at_least(minimum: float, kind: type = int) -> Callable[[str], float]:
    """An argparse type refusing values under `minimum`: a worker that cannot work never starts."""
    def parse(text: str) -> float:
        value = kind(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be {minimum} or more, got {value}")
        return value

    return parse


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m graph.stream", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--redis-url", default=os.environ.get("ONCOGRAPH_REDIS_URL", DEFAULT_URL),
                        help=f"env ONCOGRAPH_REDIS_URL (default {DEFAULT_URL})")
    parser.add_argument("--prefix", default=os.environ.get("ONCOGRAPH_STREAM_PREFIX", "oncograph"),
                        help="stream names <prefix>:abstracts|results|dead")
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)
    prod = sub.add_parser("produce", help="queue abstracts from a CSV, JSONL or folder")
    prod.add_argument("--input", required=True)
    prod.add_argument("--limit", type=_at_least(0))
    work = sub.add_parser("work", help="process queued abstracts until stopped")
    work.add_argument("--config", help="YAML merged over configs/default.yaml")
    work.add_argument("--model", help="classifier model name or YAML path")
    work.add_argument("--batch-size", type=_at_least(1), default=8, help="entries per XREADGROUP")
    work.add_argument("--threads", type=_at_least(1), help="torch threads (default: all cores)")
    work.add_argument("--claim-idle", type=_at_least(0, float), default=120.0,
                      help="seconds before another worker's pending entry is taken over")
    work.add_argument("--max-deliveries", type=_at_least(1), default=3,
                      help="deliveries before an entry goes to the dead-letter stream")
    work.add_argument("--block", type=_at_least(0.001, float), default=2.0,
                      help="seconds one read waits")
    work.add_argument("--exit-when-idle", type=_at_least(0, float),
                      help="exit after this many idle seconds")
    work.add_argument("--consumer", help="consumer name (default host-pid)")
    coll = sub.add_parser("collect", help="write the results stream to JSONL, one per abstract")
    coll.add_argument("--output", required=True)
    coll.add_argument("--wait", type=_at_least(0, float), default=0.0,
                      help="first wait up to this many seconds for the queue to drain; exit 1 "
                      "if entries are still unfinished then")
    sub.add_parser("status", help="produced / waiting / pending / results / dead-lettered")
    return parser


def _unfinished(client: redis.Redis, keys: Keys) -> int:
    state = group_state(client, keys)
    return state["lag"] + state["pending"]


def _status(client: redis.Redis, keys: Keys) -> dict[str, int]:
    state = group_state(client, keys)
    return {**state, "results": client.xlen(keys.results), "dead_lettered": client.xlen(keys.dead)}


def _work(args: argparse.Namespace, client: redis.Redis, keys: Keys) -> int:
    try:
        config = WorkerConfig(
            batch_size=args.batch_size, block_ms=int(args.block * 1000),
            claim_idle_ms=int(args.claim_idle * 1000), max_deliveries=args.max_deliveries,
            exit_when_idle_s=args.exit_when_idle,
            **({"consumer": args.consumer} if args.consumer else {}),
        )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    settings = load_settings(args.config, classifier={"model": args.model} if args.model else None)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    from graph.pipeline import Pipeline

    pipeline = Pipeline(settings)
    pipeline.warm_up()  # before reading: loading must not eat into the claim idle time
    ensure_group(client, keys)
    worker = Worker(client, keys, pipeline, config)

    def stop(signum: int, _frame: Any) -> None:
        log.warning("signal %d: stopping after the current batch", signum)
        worker.stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"worker {config.consumer}: reading {keys.abstracts}", file=sys.stderr)
    committed = worker.run()
    print(f"worker {config.consumer}: {committed} results, {worker.dead_lettered} dead-lettered",
          file=sys.stderr)
    left = worker.pending_here()
    if left:
        print(f"worker {config.consumer}: {left} entries left pending (another worker takes them "
              "over after --claim-idle; undecodable ones are dead-lettered after --max-deliveries)",
              file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(message)s")
    keys = Keys(args.prefix)
    try:
        client = connect(args.redis_url)
        if args.command == "produce":
            rows = read_input(args.input)[: args.limit]
            queued = produce(client, keys, rows)
            print(f"queued {queued} abstracts on {keys.abstracts}", file=sys.stderr)
        elif args.command == "work":
            return _work(args, client, keys)
        elif args.command == "collect":
            deadline = time.monotonic() + args.wait
            while _unfinished(client, keys) and time.monotonic() < deadline:
                time.sleep(0.5)
            summary = collect(client, keys, Path(args.output))
            unfinished = _unfinished(client, keys)
            print(json.dumps({**summary, "unfinished": unfinished}), file=sys.stderr)
            if unfinished:
                print(f"error: {unfinished} queued abstracts have no result yet; {args.output} "
                      "is incomplete (start workers, or collect again with a longer --wait)",
                      file=sys.stderr)
                return 1
        else:
            print(json.dumps(_status(client, keys)))
    except (ConfigError, InputError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except redis.ConnectionError as exc:
        print(f"error: cannot reach Redis at {args.redis_url}: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
