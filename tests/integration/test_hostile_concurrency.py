"""Concurrency hazards: two writers on one output, checkpoint threads shared between runs,
and one bad text poisoning its micro-batch."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

import numpy as np

from core.contract import dumps_record
from core.io import InputRow
from eval.hostile.harness import Harness
from tools.classifier.batching import MicroBatcher


def test_two_concurrent_writers_never_write_a_record_twice(tmp_path):
    harness = Harness(tmp_path / "h")
    source = tmp_path / "in.jsonl"
    source.write_text("".join(
        json.dumps({"id": f"r{i}", "title": f"Melanoma study {i}", "abstract": "Nivolumab."}) + "\n"
        for i in range(120)))
    out = tmp_path / "out.jsonl"
    command = [sys.executable, "-m", "graph.run", "--input", str(source), "--output", str(out),
               "--config", str(harness.config), "--no-report", "--no-checkpoint"]
    procs = [subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    results = [(p.wait(timeout=600), p.stderr.read()) for p in procs]
    codes = sorted(code for code, _ in results)
    errors = [err for _, err in results]
    assert all("Traceback" not in err for err in errors), errors
    refused = [err for code, err in results if code == 2]
    if codes == [0, 2]:
        assert "being written by another run" in refused[0].strip().splitlines()[-1]
    else:  # the first finished before the second looked: the second resumes with nothing to do
        assert codes == [0, 0] and any("resuming: 120 of 120" in err for err in errors), errors
    ids = [json.loads(line)["abstract_id"] for line in out.read_text().splitlines()]
    assert sorted(ids) == sorted(f"r{i}" for i in range(120)), "a record lost or written twice"


def test_checkpoint_threads_are_unique_per_call(tmp_path):
    from core.settings import load_settings
    from graph.pipeline import Pipeline

    pipeline = Pipeline(load_settings(Harness(tmp_path).config))
    seen: list[str] = []
    real = pipeline.graph.batch

    def spy(inputs, configs, **kwargs):
        seen.extend(c["configurable"]["thread_id"] for c in configs)
        return real(inputs, configs, **kwargs)

    pipeline.graph.batch = spy
    rows = [InputRow("same", "Melanoma", "x")]
    pipeline.process(rows, run_id="run")
    pipeline.process(rows, run_id="run")  # the same run id and abstract id, twice
    assert len(seen) == 2 and len(set(seen)) == 2


def test_one_poisoned_text_does_not_fail_its_batch():
    def score(texts: list[str], prompt: str) -> np.ndarray:
        if any("POISON" in t for t in texts):
            raise ValueError("cannot tokenise")
        return np.full(len(texts), 0.9)

    batcher = MicroBatcher(score, batch_size=4, max_wait_s=1.0)
    futures = batcher.submit(["a", "b POISON", "c", "d"])
    outcomes = []
    for future in futures:
        try:
            outcomes.append(future.result(timeout=10))
        except ValueError as exc:
            outcomes.append(str(exc))
    assert outcomes == [0.9, "cannot tokenise", 0.9, 0.9]


def test_a_lone_surrogate_in_one_row_leaves_the_others_alone(tmp_path):
    """Past the input contract (a caller building rows by hand), a lone surrogate fails at
    most its own row, and every record stays writable as UTF-8 JSONL."""
    from core.settings import load_settings
    from graph.pipeline import Pipeline

    pipeline = Pipeline(load_settings(Harness(tmp_path).config))
    rows = [InputRow(f"r{i}", "Melanoma", "Nivolumab.") for i in range(6)]
    rows[2] = InputRow("bad", "Melanoma \ud800", "x")
    records = pipeline.process(rows)
    assert [r["abstract_id"] for r in records] == ["r0", "r1", "bad", "r3", "r4", "r5"]
    assert all(r["status"] == "ok" for r in records if r["abstract_id"] != "bad")
    for record in records:
        dumps_record(record).encode("utf-8")


def test_concurrent_api_batches_with_equal_ids_do_not_mix(tmp_path):
    """Clients sending the same given ID for different texts at once: each gets its own."""
    harness = Harness(tmp_path)
    client = harness.api()
    texts = {"Cancer": ("Lung cancer", "NSCLC is a lung cancer."),
             "Non-Cancer": ("Asthma in children", "Inhaled steroids.")}
    answered: list[str] = []
    failures: list[str] = []

    def send(label: str) -> None:
        title, abstract = texts[label]
        items = [{"abstract_id": "same", "title": title, "abstract": abstract}, {"title": title}]
        while len(answered) < 20 and not failures:
            response = client.post("/v1/batch", json={"items": items})
            if response.status_code == 429:  # over capacity: the documented answer, retried
                time.sleep(0.01)
                continue
            got = [r["predicted_labels"] for r in response.json().get("results", [])]
            (answered if got == [[label], [label]] else failures).append(f"{label}: {got}")

    workers = [threading.Thread(target=send, args=(label,)) for label in [*texts, *texts]]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=120)
    harness.close()
    assert not failures and len(answered) >= 20
