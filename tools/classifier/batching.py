"""Micro-batching: concurrent single-abstract calls become one batched forward pass.

`graph.batch(..., max_concurrency=N)` runs N graph instances in threads; each classifier
node asks for one abstract. Requests that arrive within `max_wait_s` of each other (or
until `batch_size` are queued) are scored together, so the CLI, the API under load and
the stream workers all get batched inference without giving up the per-abstract graph.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass

import numpy as np

Scorer = Callable[[list[str], str], np.ndarray]


def score_by_length(
    texts: list[str], batch_size: int, score_batch: Callable[[list[str]], np.ndarray]
) -> np.ndarray:
    """Score texts in batches of similar length (little padding); results in input order."""
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    probs = np.zeros(len(texts), dtype=np.float64)
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        probs[idx] = score_batch([texts[i] for i in idx])
    return probs


@dataclass
class _Request:
    text: str
    prompt: str
    future: Future


class MicroBatcher:
    def __init__(self, score: Scorer, batch_size: int = 8, max_wait_s: float = 0.05):
        self.score = score
        self.batch_size = batch_size
        self.max_wait_s = max_wait_s
        self._queue: queue.Queue[_Request] = queue.Queue()
        self._worker = threading.Thread(target=self._loop, daemon=True, name="micro-batcher")
        self._worker.start()
        self.batches_run = 0  # for tests and the run summary

    def submit(self, texts: list[str], prompt: str = "default") -> list[Future]:
        futures = []
        for text in texts:
            future: Future = Future()
            self._queue.put(_Request(text, prompt, future))
            futures.append(future)
        return futures

    def predict(self, texts: list[str], prompt: str = "default") -> np.ndarray:
        return np.array([f.result() for f in self.submit(texts, prompt)], dtype=np.float64)

    def _take_batch(self) -> list[_Request]:
        batch = [self._queue.get()]
        while len(batch) < self.batch_size:
            try:
                batch.append(self._queue.get(timeout=self.max_wait_s))
            except queue.Empty:
                break
        return batch

    def _loop(self) -> None:
        while True:
            batch = self._take_batch()
            by_prompt: dict[str, list[_Request]] = {}
            for request in batch:
                by_prompt.setdefault(request.prompt, []).append(request)
            for prompt, requests in by_prompt.items():
                self._score(requests, prompt)
                self.batches_run += 1

    def _score(self, requests: list[_Request], prompt: str) -> None:
        """Score a batch; if it fails, score its texts one by one so that only the text that
        fails alone gets the error (one bad abstract never poisons its batch-mates)."""
        try:
            probs = self.score([r.text for r in requests], prompt)
            results = [float(p) for p in probs]
            if len(results) != len(requests):
                raise ValueError(f"scorer returned {len(results)} scores for {len(requests)} texts")
        except Exception as exc:  # noqa: BLE001 - retried singly, else handed to the caller
            if len(requests) == 1:
                requests[0].future.set_exception(exc)
                return
            for request in requests:
                self._score([request], prompt)
            return
        for request, p in zip(requests, results, strict=True):
            request.future.set_result(p)
