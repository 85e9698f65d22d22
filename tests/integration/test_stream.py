"""Redis Streams workers against a real redis-server (started here on a free loopback port)."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import redis

from core.io import InputRow
from core.settings import load_settings
from graph.stream import Keys, Worker, WorkerConfig, connect, main, produce


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory):
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server not installed: apt-get install -y redis-server")
    port = free_port()
    folder = tmp_path_factory.mktemp("redis")
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(folder), "--save", "",
         "--appendonly", "yes", "--appendfsync", "always"],
        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
    )
    url = f"redis://127.0.0.1:{port}/0"
    deadline = time.monotonic() + 10
    while True:
        try:
            connect(url)
            break
        except redis.ConnectionError:
            assert proc.poll() is None and time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)
    yield url
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture(scope="module")
def pipeline(light_config):
    from graph.pipeline import Pipeline

    pipe = Pipeline(load_settings(light_config))
    pipe.warm_up()
    return pipe


def write_csv(path: Path, n: int, bad_rows: bool = False) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["pmid", "title", "abstract"])
        for i in range(n):
            writer.writerow([f"p{i}", f"Study {i} of breast cancer", f"Tamoxifen trial {i}."])
        if bad_rows:
            writer.writerow(["empty", "", ""])
            writer.writerow(["p0", "A duplicate id", "Rejected by the reader."])
    return path


def result_counts(client: redis.Redis, keys: Keys) -> Counter:
    return Counter(fields["abstract_id"] for _, fields in client.xrange(keys.results))


def test_produce_work_collect(redis_url, light_config, pipeline, tmp_path, capsys):
    base = ["--redis-url", redis_url, "--prefix", "flow"]
    assert main([*base, "produce", "--input", str(write_csv(tmp_path / "in.csv", 5, True))]) == 0
    assert main([*base, "work", "--config", str(light_config), "--batch-size", "2",
                 "--exit-when-idle", "0.5", "--block", "0.2"]) == 0
    out = tmp_path / "results.jsonl"
    assert main([*base, "collect", "--output", str(out)]) == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(r["abstract_id"] for r in records) == ["empty", "p0", "p1", "p2", "p3", "p4"]
    by_id = {r["abstract_id"]: r for r in records}
    assert by_id["p0"]["status"] == "ok" and by_id["p0"]["model"]["name"] == "tiny-qwen"
    assert by_id["empty"]["status"].startswith("error: empty row")
    assert by_id["p0"]["status"] == "ok"  # its duplicate's error record does not replace it
    capsys.readouterr()
    assert main([*base, "status"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status == {"produced": 7, "lag": 0, "pending": 0, "consumers": 1, "results": 7,
                      "dead_lettered": 0}


def test_sigkill_mid_batch_loses_and_duplicates_nothing(redis_url, light_config, pipeline):
    keys = Keys("kill")
    client = connect(redis_url)
    rows = [InputRow(f"k{i}", f"Title {i} on lymphoma", f"Rituximab study {i}.") for i in range(24)]
    produce(client, keys, rows)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    victim = subprocess.Popen(
        [sys.executable, "-m", "graph.stream", "--redis-url", redis_url, "--prefix", keys.prefix,
         "work", "--config", str(light_config), "--batch-size", "4", "--consumer", "victim",
         "--claim-idle", "600"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        # start-up (torch, langgraph, the config) took over 60 s on 2 cores beside a training run
        deadline = time.monotonic() + 180
        while not client.xpending_range(keys.abstracts, keys.group, "-", "+", 1, "victim"):
            assert victim.poll() is None, victim.stderr.read().decode()
            assert time.monotonic() < deadline, "worker never took a batch"
            time.sleep(0.002)
        victim.send_signal(signal.SIGKILL)  # mid-batch: entries read, not yet acknowledged
        victim.wait(timeout=10)
    finally:
        if victim.poll() is None:
            victim.kill()
    orphaned = client.xpending_range(keys.abstracts, keys.group, "-", "+", 100, "victim")
    assert orphaned, "the kill should leave the batch pending"
    rescuer = Worker(client, keys, pipeline, WorkerConfig(
        batch_size=8, block_ms=200, claim_idle_ms=500, exit_when_idle_s=2.0, consumer="rescuer"))
    rescuer.run()
    counts = result_counts(client, keys)
    assert set(counts) == {r.abstract_id for r in rows}
    assert set(counts.values()) == {1}, "exactly one result per abstract"
    assert client.xpending(keys.abstracts, keys.group)["pending"] == 0
    assert client.xlen(keys.dead) == 0


def test_taken_over_entry_is_committed_once(redis_url, pipeline):
    """A slow worker whose entry was taken over finds it acknowledged and writes nothing."""
    keys = Keys("slow")
    client = connect(redis_url)
    produce(client, keys, [InputRow("s1", "Glioma", "Temozolomide.")])
    slow = Worker(client, keys, pipeline, WorkerConfig(consumer="slow", block_ms=100))
    [(entry_id, _)] = slow._read()
    fast = Worker(client, keys, pipeline, WorkerConfig(consumer="fast", claim_idle_ms=0))
    assert fast.step() == 1 and fast.committed == 1
    record = pipeline.process([InputRow("s1", "Glioma", "Temozolomide.")])[0]
    late = slow._commit_entry(entry_id, [(keys.results, slow._result_fields(entry_id, record))])
    assert late == 0
    assert result_counts(client, keys) == {"s1": 1}


def test_dead_letter_after_too_many_deliveries(redis_url, pipeline):
    keys = Keys("poison")
    client = connect(redis_url)
    produce(client, keys, [InputRow(f"d{i}", "Melanoma", "Nivolumab.") for i in range(3)])
    client.xadd(keys.abstracts, {"title": "no id field"})
    # a worker that read the entries and died: one delivery each, never acknowledged
    client.xreadgroup(keys.group, "ghost", {keys.abstracts: ">"}, count=10)
    worker = Worker(client, keys, pipeline, WorkerConfig(
        consumer="strict", claim_idle_ms=0, max_deliveries=1, block_ms=100, exit_when_idle_s=0.3))
    worker.run()
    dead = [fields for _, fields in client.xrange(keys.dead)]
    assert len(dead) == 4 and worker.dead_lettered == 4
    reasons = Counter(d["reason"].split(":")[0] for d in dead)
    assert reasons == {"gave up after 1 failed deliveries": 3, "malformed entry": 1}
    results = {f["abstract_id"]: json.loads(f["record"]) for _, f in client.xrange(keys.results)}
    assert len(results) == 4
    assert all(r["status"].startswith("error: dead-lettered") for r in results.values())
    assert client.xpending(keys.abstracts, keys.group)["pending"] == 0


def test_cli_errors_are_one_line(tmp_path, capsys):
    dead_port = free_port()
    url = f"redis://127.0.0.1:{dead_port}/0"
    assert main(["--redis-url", url, "status"]) == 2
    assert "cannot reach Redis" in capsys.readouterr().err


def test_bad_input_file_is_reported(redis_url, tmp_path, capsys):
    code = main(["--redis-url", redis_url, "produce", "--input", str(tmp_path / "nope.csv")])
    assert code == 2
    assert capsys.readouterr().err.startswith("error: input not found")
