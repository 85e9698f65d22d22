"""The REST API on the tiny random Qwen: every endpoint, its 4xx paths, jobs and overload."""

from __future__ import annotations

import threading
import time

import httpx
import jsonschema
import pytest
from fastapi.testclient import TestClient

from core.io import MAX_ABSTRACT_CHARS
from core.schema import SCHEMA_PATH
from core.settings import load_settings
from graph.api import ApiSettings, create_app

ITEM = {
    "abstract_id": "30873683",
    "title": "Tumour biomarkers in lung cancer",
    "abstract": "Non-small cell lung cancer (NSCLC) is the leading cause of cancer death [1].",
}


def wait_ready(client: TestClient, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while client.get("/ready").status_code != 200:
        assert time.monotonic() < deadline, client.get("/ready").json()
        time.sleep(0.05)


@pytest.fixture(scope="module")
def settings(light_config):
    return load_settings(light_config)


@pytest.fixture(scope="module")
def client(settings):
    api = ApiSettings(max_batch=3, max_job_items=4, max_jobs=2, max_in_flight=4, job_chunk=2)
    with TestClient(create_app(api, settings)) as c:
        wait_ready(c)
        yield c


def test_classify_returns_the_cli_record(client):
    import json

    response = client.post("/v1/classify", json=ITEM)
    assert response.status_code == 200
    record = response.json()
    jsonschema.validate(record, json.loads(SCHEMA_PATH.read_text()))
    assert record["abstract_id"] == "30873683"
    assert record["status"] == "ok"
    assert set(record["confidence_scores"]) == {"Cancer", "Non-Cancer"}
    assert record["model"]["name"] == "tiny-qwen"
    assert "MESH:D002289" in {m["concept_id"] for m in record["disease_mentions"]}  # NSCLC


def test_health_ready_models_and_docs(client):
    assert client.get("/health").json()["status"] == "ok"
    assert client.get("/ready").json() == {"status": "ready"}
    models = client.get("/v1/models").json()
    assert models["ready"] is True
    assert models["classifier"]["name"] == "tiny-qwen"
    assert models["classifier"]["adapter_version"] is None
    assert models["verifier"]["confidence_threshold"] == 0.85
    assert models["limits"]["max_batch"] == 3
    paths = client.get("/openapi.json").json()["paths"]
    expected = {"/v1/classify", "/v1/batch", "/v1/jobs", "/v1/jobs/{job_id}", "/v1/models"}
    assert expected <= set(paths)
    assert client.get("/docs").status_code == 200


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"title": " ", "abstract": ""}, "both are empty"),
        ({"abstract": "x" * (MAX_ABSTRACT_CHARS + 1)}, "at most"),
        ({"abstract": "fine", "pmid": 1}, "Extra inputs"),
        ({"abstract": 42}, "valid string"),
        ({"abstract_id": "", "abstract": "fine"}, "at least 1"),
    ],
)
def test_bad_input_gets_a_clear_422(client, body, message):
    response = client.post("/v1/classify", json=body)
    assert response.status_code == 422
    assert message in str(response.json()["detail"])


def test_malformed_json_is_a_422_not_a_500(client):
    response = client.post(
        "/v1/classify", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 422


def test_batch_keeps_order_and_names_missing_ids(client):
    items = [
        ITEM, {"title": "Asthma in children", "abstract": "Inhaled steroids."}, {"title": "A title"}
    ]
    response = client.post("/v1/batch", json={"items": items})
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 3
    ids = [r["abstract_id"] for r in body["results"]]
    assert ids[0] == "30873683" and all(i.startswith("gen-") for i in ids[1:])
    assert len(set(ids)) == 3


def test_batch_over_the_limit_is_413_with_a_hint(client):
    items = [dict(ITEM, abstract_id=str(n)) for n in range(4)]
    response = client.post("/v1/batch", json={"items": items})
    assert response.status_code == 413
    assert "/v1/jobs" in response.json()["detail"]


def test_batch_rejects_duplicate_ids_and_empty_batches(client):
    assert "duplicate" in str(client.post("/v1/batch", json={"items": [ITEM, ITEM]}).json())
    assert client.post("/v1/batch", json={"items": []}).status_code == 422


def test_job_lifecycle(client):
    items = [dict(ITEM, abstract_id=f"j{i}") for i in range(3)]
    response = client.post("/v1/jobs", json={"items": items})
    assert response.status_code == 202
    job = response.json()
    assert job["status"] in ("queued", "running") and job["total"] == 3 and job["results"] is None
    deadline = time.monotonic() + 60
    while job["status"] in ("queued", "running"):
        assert time.monotonic() < deadline
        time.sleep(0.05)
        job = client.get(f"/v1/jobs/{job['id']}").json()
    assert job["status"] == "done" and job["done"] == 3
    assert [r["abstract_id"] for r in job["results"]] == ["j0", "j1", "j2"]
    assert client.get("/v1/jobs/nope").status_code == 404
    too_many = [dict(ITEM, abstract_id=f"k{i}") for i in range(5)]
    assert client.post("/v1/jobs", json={"items": too_many}).status_code == 413


def test_job_store_is_bounded(client):
    service = client.app.state.service
    ids = []
    for n in range(3):  # max_jobs=2: the oldest finished job makes room
        body = {"items": [dict(ITEM, abstract_id=f"b{n}")]}
        ids.append(client.post("/v1/jobs", json=body).json()["id"])
        while service.get_job(ids[-1]).status not in ("done", "failed"):
            time.sleep(0.02)
    assert len(service.jobs) <= 2
    assert client.get(f"/v1/jobs/{ids[0]}").status_code == 404
    assert client.get(f"/v1/jobs/{ids[-1]}").json()["status"] == "done"


def test_overload_gets_429_with_retry_after_then_recovers(client):
    capacity = client.app.state.service.capacity
    assert capacity.try_acquire(capacity.limit)  # every slot taken, as by slow requests
    try:
        response = client.post("/v1/classify", json=ITEM)
        assert response.status_code == 429
        assert int(response.headers["retry-after"]) >= 1
        assert client.post("/v1/batch", json={"items": [ITEM]}).status_code == 429
    finally:
        capacity.release(capacity.limit)
    assert client.post("/v1/classify", json=ITEM).status_code == 200


def test_concurrent_clients_are_answered_never_hung(settings):
    """A real server with room for one abstract: 8 concurrent clients all get an answer."""
    import uvicorn

    app = create_app(ApiSettings(max_in_flight=1), settings)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    try:
        while httpx.get(f"{base}/ready").status_code != 200:
            time.sleep(0.05)
        responses: list[httpx.Response] = []

        def call(n: int) -> None:
            body = dict(ITEM, abstract_id=f"c{n}", abstract=ITEM["abstract"] * 20)
            responses.append(httpx.post(f"{base}/v1/classify", json=body, timeout=60))

        threads = [threading.Thread(target=call, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=90)
        assert len(responses) == 8
        codes = [r.status_code for r in responses]
        assert set(codes) <= {200, 429} and 200 in codes and 429 in codes
        assert all(int(r.headers["retry-after"]) >= 1 for r in responses if r.status_code == 429)
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_api_key_when_configured(settings):
    api = ApiSettings(key="s3cret")
    with TestClient(create_app(api, settings)) as c:
        wait_ready(c)
        assert c.get("/health").status_code == 200  # probes stay open
        assert c.post("/v1/classify", json=ITEM).status_code == 401
        assert c.post("/v1/classify", json=ITEM, headers={"X-API-Key": "wrong"}).status_code == 401
        assert c.post("/v1/classify", json=ITEM, headers={"X-API-Key": "s3cret"}).status_code == 200
        assert c.get("/v1/models", headers={"Authorization": "Bearer s3cret"}).status_code == 200


def test_ready_is_503_while_loading_and_jobs_wait(settings):
    from graph.pipeline import Pipeline

    gate = threading.Event()

    def slow_pipeline(s):
        gate.wait(30)
        return Pipeline(s)

    with TestClient(create_app(ApiSettings(), settings, pipeline_factory=slow_pipeline)) as c:
        assert c.get("/health").json()["ready"] is False
        loading = c.get("/ready")
        assert loading.status_code == 503 and loading.json()["status"] == "loading"
        refused = c.post("/v1/classify", json=ITEM)
        assert refused.status_code == 503 and "retry-after" in refused.headers
        assert c.get("/v1/models").json()["ready"] is False
        job = c.post("/v1/jobs", json={"items": [ITEM]}).json()
        assert job["status"] == "queued"
        gate.set()
        wait_ready(c)
        deadline = time.monotonic() + 30
        while c.get(f"/v1/jobs/{job['id']}").json()["status"] != "done":
            assert time.monotonic() < deadline
            time.sleep(0.05)


def test_failed_loading_is_reported_not_hidden(tmp_path):
    with TestClient(create_app(ApiSettings(config=str(tmp_path / "missing.yaml")))) as c:
        deadline = time.monotonic() + 10
        while c.get("/ready").json()["status"] == "loading":
            assert time.monotonic() < deadline
            time.sleep(0.02)
        ready = c.get("/ready")
        assert ready.status_code == 503 and "config file not found" in ready.json()["error"]
        assert c.get("/health").status_code == 200
        assert "failed to load" in c.post("/v1/classify", json=ITEM).json()["detail"]


def test_settings_come_from_the_environment():
    env = {"ONCOGRAPH_API_MAX_BATCH": "5", "ONCOGRAPH_API_KEY": "k", "HOME": "/"}
    api = ApiSettings.from_env(env)
    assert api.max_batch == 5 and api.key == "k" and api.max_in_flight == 8
    with pytest.raises(ValueError):
        ApiSettings.from_env({"ONCOGRAPH_API_MAX_BATCH": "0"})
