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
  so a poison abstract cannot crash workers for ever and still ends with a result.
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
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from core.io import InputError, InputRow, read_input
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
    ensure_group(client, keys)
    for i in range(0, len(rows), chunk):
        pipe = client.pipeline(transaction=False)
        for row in rows[i : i + chunk]:
            fields = {"abstract_id": row.abstract_id, "title": row.title, "abstract": row.abstract}
            if row.error:
                fields["error"] = row.error
            pipe.xadd(keys.abstracts, fields)
        pipe.execute()
    return len(rows)


@dataclass
class WorkerConfig:
    batch_size: int = 8
    block_ms: int = 2_000
    claim_idle_ms: int = 120_000  # well above one batch's processing time
    max_deliveries: int = 3
    exit_when_idle_s: float | None = None  # None: run until SIGTERM
    consumer: str = field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}")


class Worker:
    """Reads batches from the group, runs them through the pipeline, commits atomically."""

    def __init__(self, client: redis.Redis, keys: Keys, pipeline: Any, config: WorkerConfig):
        self.client, self.keys, self.pipeline, self.config = client, keys, pipeline, config
        self._commit = client.register_script(_COMMIT)
        self._claim_cursor = "0-0"
        self.stopping = False
        self.committed = 0
        self.dead_lettered = 0

    def _claim(self) -> list[tuple[str, dict]]:
        """Entries another (dead) consumer left pending for longer than the claim idle time."""
        reply = self.client.xautoclaim(
            self.keys.abstracts, self.keys.group, self.config.consumer,
            min_idle_time=self.config.claim_idle_ms, start_id=self._claim_cursor,
            count=self.config.batch_size,
        )
        self._claim_cursor = reply[0]
        return [(entry_id, fields) for entry_id, fields in reply[1] if fields is not None]

    def _read(self) -> list[tuple[str, dict]]:
        reply = self.client.xreadgroup(
            self.keys.group, self.config.consumer, {self.keys.abstracts: ">"},
            count=self.config.batch_size, block=self.config.block_ms,
        )
        return [entry for _, entries in reply or [] for entry in entries]

    def _deliveries(self, ids: list[str]) -> dict[str, int]:
        order = sorted(ids, key=lambda i: tuple(int(x) for x in i.split("-")))
        rows = self.client.xpending_range(
            self.keys.abstracts, self.keys.group, min=order[0], max=order[-1],
            count=10 * len(ids) + 100, consumername=self.config.consumer,
        )
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
            "worker": self.config.consumer, "record": json.dumps(record, ensure_ascii=False),
        }

    def _dead_letter(self, entry_id: str, fields: dict, reason: str) -> None:
        from graph.pipeline import error_record

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
        todo: list[tuple[str, InputRow]] = []
        for entry_id, fields in entries:
            if not fields.get("abstract_id"):
                self._dead_letter(entry_id, fields, "malformed entry: no abstract_id field")
            elif deliveries.get(entry_id, 1) > self.config.max_deliveries:
                self._dead_letter(
                    entry_id, fields,
                    f"gave up after {deliveries[entry_id] - 1} failed deliveries",
                )
            else:
                row = InputRow(
                    fields["abstract_id"], fields.get("title", ""), fields.get("abstract", ""),
                    error=fields.get("error") or None,
                )
                todo.append((entry_id, row))
        if todo:
            # a failure here leaves the batch pending: it is retried after the claim idle time
            records = self.pipeline.process([row for _, row in todo], run_id="stream")
            pipe = self.client.pipeline(transaction=False)  # one round trip for the batch
            for (entry_id, _), record in zip(todo, records, strict=True):
                result = self._result_fields(entry_id, record)
                self._commit_entry(entry_id, [(self.keys.results, result)], client=pipe)
            self.committed += sum(1 for ok in pipe.execute() if ok)
        return len(entries)

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
        entries = client.xrange(keys.results, min=start, max="+", count=page)
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
    prod.add_argument("--limit", type=int)
    work = sub.add_parser("work", help="process queued abstracts until stopped")
    work.add_argument("--config", help="YAML merged over configs/default.yaml")
    work.add_argument("--model", help="classifier model name or YAML path")
    work.add_argument("--batch-size", type=int, default=8, help="entries per XREADGROUP")
    work.add_argument("--threads", type=int, help="torch threads (default: all cores)")
    work.add_argument("--claim-idle", type=float, default=120.0,
                      help="seconds before another worker's pending entry is taken over")
    work.add_argument("--max-deliveries", type=int, default=3,
                      help="deliveries before an entry goes to the dead-letter stream")
    work.add_argument("--block", type=float, default=2.0, help="seconds one read waits")
    work.add_argument("--exit-when-idle", type=float, help="exit after this many idle seconds")
    work.add_argument("--consumer", help="consumer name (default host-pid)")
    coll = sub.add_parser("collect", help="write the results stream to JSONL, one per abstract")
    coll.add_argument("--output", required=True)
    coll.add_argument("--wait", type=float, default=0.0,
                      help="first wait up to this many seconds for the queue to drain")
    sub.add_parser("status", help="produced / waiting / pending / results / dead-lettered")
    return parser


def _unfinished(client: redis.Redis, keys: Keys) -> int:
    state = group_state(client, keys)
    return state["lag"] + state["pending"]


def _status(client: redis.Redis, keys: Keys) -> dict[str, int]:
    state = group_state(client, keys)
    return {**state, "results": client.xlen(keys.results), "dead_lettered": client.xlen(keys.dead)}


def _work(args: argparse.Namespace, client: redis.Redis, keys: Keys) -> int:
    settings = load_settings(args.config, classifier={"model": args.model} if args.model else None)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    from graph.pipeline import Pipeline

    config = WorkerConfig(
        batch_size=args.batch_size, block_ms=int(args.block * 1000),
        claim_idle_ms=int(args.claim_idle * 1000), max_deliveries=args.max_deliveries,
        exit_when_idle_s=args.exit_when_idle,
    )
    if args.consumer:
        config.consumer = args.consumer
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
            print(json.dumps({**summary, "unfinished": _unfinished(client, keys)}), file=sys.stderr)
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
