"""LangGraph Studio: `langgraph dev` serves the exported graph and runs one abstract over HTTP."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def dev_server(project_root: Path, light_config: Path, tmp_path: Path):
    port = free_port()
    env = {
        **os.environ,
        "ONCOGRAPH_CONFIG": str(light_config),
        "LANGSMITH_TRACING": "false",
        "LANGGRAPH_CLI_NO_ANALYTICS": "1",
    }
    langgraph = Path(sys.executable).with_name("langgraph")
    log = (tmp_path / "dev.log").open("w")
    proc = subprocess.Popen(
        [str(langgraph), "dev", "--port", str(port), "--no-browser", "--no-reload",
         "--host", "127.0.0.1"],
        cwd=project_root, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while time.time() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"langgraph dev exited: {(tmp_path / 'dev.log').read_text()[-2000:]}")
        try:
            if httpx.get(f"{url}/ok", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(1)
    else:
        proc.kill()
        pytest.fail(f"langgraph dev did not start: {(tmp_path / 'dev.log').read_text()[-2000:]}")
    yield url
    os.killpg(proc.pid, 15)
    proc.wait(timeout=30)


def test_studio_runs_one_abstract(dev_server):
    body = {
        "assistant_id": "oncograph",
        "input": {"abstract_id": "s1", "title": "Breast cancer screening",
                  "abstract": "Mammography detects breast cancer early."},
    }
    response = httpx.post(f"{dev_server}/runs/wait", json=body, timeout=180)
    assert response.status_code == 200, response.text
    record = response.json()["record"]
    assert record["abstract_id"] == "s1"
    assert record["status"] == "ok"
    assert set(record["confidence_scores"]) == {"Cancer", "Non-Cancer"}
