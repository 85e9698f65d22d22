"""Load test: start the API on 127.0.0.1, drive /v1/classify at 1 and N concurrent clients.

    python -m eval.loadtest [--model qwen2.5-1.5b] [--single 20] [--concurrent 60] [--clients 20]

Bounded: a fixed number of requests per phase and a wall-clock cap (`--max-seconds`); the
server it started is stopped at the end. Only the loopback address is ever contacted.
Clients honour 429/503 Retry-After (bounded retries). "lost" = the server failed to answer
(timeout, connection error, any status but 200/429/503); a client still being refused with
Retry-After when the phase's time ran out is counted apart ("gave up at deadline").
After both phases, the 1-client phase's abstracts go once more, each as an API request
followed by one classifier call in this process (the configured model and backend, batch 1,
the graph's model text), back to back: the issue's target compares the API's p95 at 1
client with that call's p95 (at most 1.5x). Writes reports/serving/<name>.{json,md,png}.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np

from core.io import InputRow, read_folder
from core.settings import PROJECT_ROOT, load_model_config, load_settings

HOST = "127.0.0.1"  # never anything else
REPORT_DIR = PROJECT_ROOT / "reports" / "serving"
CALL_TARGET = 1.5  # issue 18: API p95 at 1 client over one classifier call


def sample_abstracts(n: int, data_dir: Path | None = None) -> list[InputRow]:
    """n abstracts spread evenly over the sorted corpus, Cancer and Non-Cancer alike."""
    folder = (data_dir or load_settings().data_path()) / "abstracts"
    rows = [r for r in read_folder(folder) if not r.error]
    step = max(1, len(rows) // n)
    return rows[::step][:n]


def pct(values: list[float] | np.ndarray, q: float) -> float | None:
    """The q-th percentile in seconds (3 decimals), None when nothing was measured."""
    return round(float(np.percentile(values, q)), 3) if len(values) else None


def paired_calls(base: str, rows: list[InputRow], model: str | None, config: str | None,
                 timeout: float) -> dict:
    """Per abstract, one API request (1 client) then one classifier call in this process
    (batch 1, the graph's model text), back to back: a busy neighbour weighs on both alike.
    The issue's target compares the two p95s."""
    from tools.classifier.registry import get_classifier
    from tools.preprocess import model_text, preprocess

    name = model or load_settings(config).classifier.model
    classifier = get_classifier(name)
    texts = [model_text(preprocess(r.title, r.abstract)) for r in rows]
    classifier.predict_proba(texts[:1])  # warm-up: the engine picks its kernels
    api, calls = [], []
    with httpx.Client(base_url=base, timeout=timeout) as client:
        for row, text in zip(rows, texts, strict=True):
            body = {"abstract_id": row.abstract_id, "title": row.title, "abstract": row.abstract}
            start = time.perf_counter()
            if client.post("/v1/classify", json=body).status_code != 200:
                continue
            api.append(time.perf_counter() - start)
            start = time.perf_counter()
            classifier.predict_proba([text])
            calls.append(time.perf_counter() - start)
    if not api:
        return {"model": load_model_config(name).name, "n": 0}

    api_p95, call_p95 = pct(api, 95), pct(calls, 95)
    assert api_p95 is not None and call_p95 is not None  # one entry per answered request
    return {"model": load_model_config(name).name, "n": len(api),
            "p50": pct(calls, 50), "p95": call_p95, "api_p50": pct(api, 50), "api_p95": api_p95,
            "api_p95_over_call_p95": round(api_p95 / call_p95, 2)}


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


class Server:
    """`uvicorn graph.api:app` in a child process, stopped on exit."""

    def __init__(self, env: dict[str, str], ready_timeout: float):
        self.port = free_port()
        self.base = f"http://{HOST}:{self.port}"
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in stop(); never a full pipe
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "graph.api:app", "--host", HOST, "--port",
             str(self.port), "--log-level", "warning", "--no-access-log"],
            cwd=PROJECT_ROOT, env={**os.environ, **env}, stdout=self.log, stderr=self.log,
        )
        self.load_seconds = self._wait_ready(ready_timeout)

    def _wait_ready(self, timeout: float) -> float:
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            if self.proc.poll() is not None:
                self.log.seek(0)
                raise RuntimeError(f"server exited: {self.log.read().decode()[-2000:]}")
            try:
                ready = httpx.get(f"{self.base}/ready", timeout=2)
                if ready.status_code == 200:
                    return time.monotonic() - start
                if ready.json().get("status") == "failed":
                    raise RuntimeError(f"server failed to load: {ready.json()['error']}")
            except httpx.TransportError:
                pass
            time.sleep(0.25)
        raise RuntimeError(f"server not ready after {timeout:.0f} s")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


@dataclass
class Outcome:
    latency: float | None = None  # the answered (200) attempt, seconds
    end_to_end: float | None = None  # first attempt to final answer, retries included
    statuses: list[int | str] = field(default_factory=list)
    retry_after_missing: int = 0


def one_request(client: httpx.Client, row: InputRow, deadline: float, max_retries: int) -> Outcome:
    outcome = Outcome()
    body = {"abstract_id": row.abstract_id, "title": row.title, "abstract": row.abstract}
    first = time.perf_counter()
    for _ in range(max_retries + 1):
        start = time.perf_counter()
        try:
            response = client.post("/v1/classify", json=body)
        except httpx.HTTPError as exc:
            outcome.statuses.append(type(exc).__name__)
            return outcome
        outcome.statuses.append(response.status_code)
        if response.status_code == 200:
            outcome.latency = time.perf_counter() - start
            outcome.end_to_end = time.perf_counter() - first
            return outcome
        if response.status_code not in (429, 503):
            return outcome
        retry_after = response.headers.get("retry-after")
        if retry_after is None:
            outcome.retry_after_missing += 1
        wait = float(retry_after or 1)
        if time.monotonic() + wait > deadline:
            return outcome
        time.sleep(wait)
    return outcome


def run_phase(base: str, rows: list[InputRow], clients: int, requests: int, seconds: float,
              max_retries: int, timeout: float) -> dict:
    """`requests` abstracts shared by `clients` threads; none starts after the deadline."""
    todo: queue.Queue[InputRow] = queue.Queue()
    for i in range(requests):
        todo.put(rows[i % len(rows)])
    outcomes: list[Outcome] = []
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def client_loop() -> None:
        with httpx.Client(base_url=base, timeout=timeout) as client:
            while time.monotonic() < deadline:
                try:
                    row = todo.get_nowait()
                except queue.Empty:
                    return
                outcome = one_request(client, row, deadline, max_retries)
                with lock:
                    outcomes.append(outcome)

    start = time.perf_counter()
    threads = [threading.Thread(target=client_loop) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    ok = [o for o in outcomes if o.latency is not None]
    lat = np.array([o.latency for o in ok]) if ok else np.zeros(0)
    e2e = np.array([o.end_to_end for o in ok]) if ok else np.zeros(0)
    attempts = Counter(str(s) for o in outcomes for s in o.statuses)

    return {
        "clients": clients,
        "requests_planned": requests,
        "requests_sent": len(outcomes),
        "answered_200": len(ok),
        # the server failed to answer: transport error, timeout, or a status other than
        # 200 / 429 / 503 (overload answers carry Retry-After and are retried)
        "lost": sum(1 for o in outcomes if any(s not in (200, 429, 503) for s in o.statuses)),
        # still refused with 429/503 + Retry-After when the phase ran out of time
        "gave_up_at_deadline": sum(
            1 for o in outcomes
            if o.latency is None and all(s in (429, 503) for s in o.statuses)
        ),
        "not_started_by_deadline": requests - len(outcomes),
        "attempt_status_counts": dict(sorted(attempts.items())),
        "overload_answers_without_retry_after": sum(o.retry_after_missing for o in outcomes),
        "wall_seconds": round(wall, 2),
        "throughput_per_s": round(len(ok) / wall, 3) if wall > 0 else None,
        "latency_s": {"p50": pct(lat, 50), "p95": pct(lat, 95), "p99": pct(lat, 99),
                      "mean": round(float(lat.mean()), 3) if len(lat) else None},
        "end_to_end_s": {"p50": pct(e2e, 50), "p95": pct(e2e, 95), "p99": pct(e2e, 99)},
        "latencies": [round(float(x), 4) for x in lat],
    }


def _call_lines(call: dict | None) -> list[str]:
    if call is None:
        return []
    ratio = call["api_p95_over_call_p95"]
    return [
        "## Against one classifier call",
        "",
        f"{call['n']} abstracts of the 1-client phase, each sent once more as an API request "
        f"and then scored by one classifier call ({call['model']}, batch 1) in the load "
        "test's process, back to back, so that other load weighs on both alike. Target: API "
        f"p95 at 1 client at most {CALL_TARGET}x the call's p95.",
        "",
        "| API p50 (s) | API p95 (s) | classifier call p50 (s) | call p95 (s) "
        "| API p95 / call p95 | target met |",
        "|---|---|---|---|---|---|",
        f"| {call['api_p50']} | {call['api_p95']} | {call['p50']} | {call['p95']} | "
        f"**{ratio}x** | {'yes' if ratio <= CALL_TARGET else 'no'} |",
        "",
    ]


def write_report(result: dict, out_dir: Path, name: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    phases = result["phases"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for phase in phases:
        if phase["latencies"]:
            label = f"{phase['clients']} client(s)"
            axes[0].hist(phase["latencies"], bins=20, alpha=0.6, label=label)
    axes[0].axvline(2.0, color="red", linestyle="--", label="2 s target")
    axes[0].set(xlabel="latency of answered requests (s)", ylabel="requests",
                title=f"/v1/classify latency, {result['model']['name']}")
    axes[0].legend()
    codes = sorted({c for p in phases for c in p["attempt_status_counts"]})
    width = 0.8 / max(1, len(codes))
    for i, code in enumerate(codes):
        values = [p["attempt_status_counts"].get(code, 0) for p in phases]
        xs = [j + i * width for j in range(len(phases))]
        axes[1].bar(xs, values, width=width, label=code)
    axes[1].set_xticks([j + 0.4 - width / 2 for j in range(len(phases))],
                       [f"{p['clients']} client(s)" for p in phases])
    axes[1].set(ylabel="attempts", title="status codes per attempt")
    axes[1].legend()
    fig.tight_layout()
    fig.savefig(out_dir / f"{name}.png", dpi=120)
    plt.close(fig)

    rows = [
        "| clients | sent | answered 200 | lost | gave up at deadline | p50 (s) | p95 (s) "
        "| p99 (s) | throughput (/s) | attempt status codes |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for p in phases:
        codes_text = ", ".join(f"{k}: {v}" for k, v in p["attempt_status_counts"].items())
        lat = p["latency_s"]
        rows.append(
            f"| {p['clients']} | {p['requests_sent']} | {p['answered_200']} | {p['lost']} | "
            f"{p['gave_up_at_deadline']} | {lat['p50']} | {lat['p95']} | {lat['p99']} | "
            f"{p['throughput_per_s']} | {codes_text} |"
        )
    env, server, model = result["environment"], result["server"], result["model"]
    md = [
        f"# API load test: {name}",
        "",
        f"Model `{model['name']}` (adapter {model['adapter_version']}), "
        f"server `uvicorn graph.api:app` on {HOST}, max in flight "
        f"{server['max_in_flight']}; models loaded in {server['load_seconds']} s.",
        f"Machine: {env['cpus']} CPUs, load average {env['load_before']} before the run, "
        f"{env['load_after']} after. "
        f"Command: `{result['command']}`.",
        "",
        *rows,
        "",
        "Latency is the answered attempt's; clients retry 429/503 after Retry-After, and "
        "end-to-end latency including those waits is in the JSON. Lost = the server failed to "
        "answer (timeout, connection error, a status other than 200/429/503).",
        "",
        *_call_lines(result.get("classifier_call")),
        f"![latency and status codes]({name}.png)",
        "",
    ]
    path = out_dir / f"{name}.md"
    path.write_text("\n".join(md))
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m eval.loadtest", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--model", help="classifier model (default: the configured one)")
    parser.add_argument("--config", help="YAML merged over configs/default.yaml")
    parser.add_argument("--single", type=int, default=20, help="requests at 1 client")
    parser.add_argument("--concurrent", type=int, default=60, help="requests at --clients")
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--max-in-flight", type=int, default=8)
    parser.add_argument("--max-seconds", type=float, default=240, help="cap for both phases")
    parser.add_argument("--max-retries", type=int, default=30)
    parser.add_argument("--timeout", type=float, default=120, help="per request, seconds")
    parser.add_argument("--out", default=str(REPORT_DIR))
    parser.add_argument("--name", default="loadtest")
    args = parser.parse_args(argv)

    rows = sample_abstracts(max(args.single, args.concurrent, 1))
    env = {"ONCOGRAPH_API_MAX_IN_FLIGHT": str(args.max_in_flight), "ONCOGRAPH_API_KEY": ""}
    if args.config:
        env["ONCOGRAPH_API_CONFIG"] = str(Path(args.config).resolve())
    if args.model:
        env["ONCOGRAPH_MODEL"] = args.model
    load_before = round(os.getloadavg()[0], 2)
    server = Server(env, ready_timeout=300)
    try:
        model = httpx.get(f"{server.base}/v1/models", timeout=10).json()["classifier"]
        deadline = time.monotonic() + args.max_seconds
        phases = []
        for clients, requests in ((1, args.single), (args.clients, args.concurrent)):
            left = deadline - time.monotonic()
            phase_seconds = left if clients != 1 else left / 2
            print(f"{clients} client(s): {requests} requests, at most {phase_seconds:.0f} s",
                  file=sys.stderr)
            phases.append(run_phase(server.base, rows, clients, requests, phase_seconds,
                                    args.max_retries, args.timeout))
        call = paired_calls(server.base, rows[: args.single], args.model, args.config,
                            args.timeout) if args.single else None
    finally:
        server.stop()
    used = argv if argv is not None else sys.argv[1:]
    result = {
        "command": " ".join(["python -m eval.loadtest", *used]),
        "model": model,
        "server": {"max_in_flight": args.max_in_flight,
                   "load_seconds": round(server.load_seconds, 1)},
        "environment": {"cpus": os.cpu_count(), "load_before": load_before,
                        "load_after": round(os.getloadavg()[0], 2)},
        "phases": phases,
    }
    if call and call["n"]:
        result["classifier_call"] = call
    path = write_report(result, Path(args.out), args.name)
    for p in phases:
        print(f"{p['clients']:>3} client(s): p50 {p['latency_s']['p50']} s, p95 "
              f"{p['latency_s']['p95']} s, {p['throughput_per_s']}/s, lost {p['lost']}",
              file=sys.stderr)
    print(f"report: {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
