"""OncoGraph REST API: `uvicorn graph.api:app` (OpenAPI docs at /docs).

Models load once, in a background thread at start-up, so /health answers at once while
/ready says 503 until the warm-up has run. Every request that reaches the models holds a
share of a bounded capacity (abstracts in flight); a request that does not fit is refused
at once with 429 + Retry-After, so overload never turns into a hang or an unbounded queue.
Concurrent requests still meet in the classifier's micro-batcher and share forward passes.

Serving settings come from ONCOGRAPH_API_* environment variables (see `ApiSettings`);
pipeline settings from configs/default.yaml, ONCOGRAPH_API_CONFIG and ONCOGRAPH_MODEL.
"""

from __future__ import annotations

import hmac
import logging
import math
import os
import queue
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import anyio
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.contract import (
    MAX_ABSTRACT_CHARS,
    MAX_ID_CHARS,
    MAX_TITLE_CHARS,
    clean_id,
    replace_surrogates,
)
from core.io import InputRow, build_rows
from core.schema import AbstractRecord
from core.settings import Settings, load_model_config, load_settings

log = logging.getLogger("oncograph.api")

ECHO_CHARS = 200  # a 422 quotes at most this much of any input value


class ApiSettings(BaseModel):
    """Serving knobs; each field is read from ONCOGRAPH_API_<FIELD> (e.g. ONCOGRAPH_API_KEY)."""

    model_config = ConfigDict(extra="forbid")

    config: str | None = None  # YAML merged over configs/default.yaml
    key: str | None = None  # when set, /v1/* needs `X-API-Key: <key>` or `Authorization: Bearer`
    max_batch: int = Field(32, ge=1)  # abstracts per POST /v1/batch; more -> 413
    max_job_items: int = Field(5_000, ge=1)  # abstracts per POST /v1/jobs; more -> 413
    max_jobs: int = Field(100, ge=1)  # jobs kept in memory; finished ones are evicted first
    max_in_flight: int = Field(8, ge=1)  # abstracts inside the pipeline at once
    # request bodies above this are refused with 413 before they are parsed (Content-Length
    # first, then the bytes actually streamed); the default fits a full job of real abstracts
    max_body_bytes: int = Field(16 * 1024 * 1024, ge=1_024)
    job_chunk: int = Field(8, ge=1)  # abstracts a job sends through the pipeline at a time
    # start listening only once the models are loaded (platforms that route traffic as soon
    # as the port opens, e.g. Cloud Run); off: /health answers during the warm-up
    wait_ready: bool = False

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ApiSettings:
        environ = os.environ if environ is None else environ
        values = {
            name: environ[f"ONCOGRAPH_API_{name.upper()}"]
            for name in cls.model_fields
            if environ.get(f"ONCOGRAPH_API_{name.upper()}", "") != ""
        }
        return cls.model_validate(values)


# ── request / response models ────────────────────────────────────────────────────────────


class AbstractIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "abstract_id": "30873683",
                    "title": "Tumour biomarkers-Tracing the molecular function.",
                    "abstract": "In recent years, with the increase in cancer mortality ...",
                }
            ]
        },
    )

    abstract_id: str | None = Field(
        None, min_length=1, max_length=MAX_ID_CHARS,
        description="Your ID, echoed in the record (never shown to a model); without one the "
        "record gets `gen-<sha256 of title and abstract>`",
    )
    title: str = Field("", max_length=MAX_TITLE_CHARS)
    abstract: str = Field("", max_length=MAX_ABSTRACT_CHARS)
    _notes: list[str] = PrivateAttr(default_factory=list)  # what the surrogate repair changed

    @model_validator(mode="wrap")
    @classmethod
    def _repair_surrogates(cls, data: Any, handler: Any) -> AbstractIn:
        """JSON escapes can carry lone surrogates (`"\\ud800"`), which no UTF-8 response can
        hold: replaced by U+FFFD, with a note on the record (core.contract)."""
        notes = []
        if isinstance(data, dict):
            repaired = {}
            for key, value in data.items():
                if isinstance(value, str):
                    value, n = replace_surrogates(value)
                    if n:
                        notes.append(f"{key}: {n} lone surrogate(s) replaced by U+FFFD")
                repaired[key] = value
            data = repaired
        item = handler(data)
        item._notes = notes
        return item

    @field_validator("abstract_id")
    @classmethod
    def _id_characters(cls, value: str | None) -> str | None:
        _, _, error = clean_id(value)
        if error:
            raise ValueError(error)
        return value

    @model_validator(mode="after")
    def _not_empty(self) -> AbstractIn:
        if not self.title.strip() and not self.abstract.strip():
            raise ValueError("give a title or an abstract: both are empty")
        return self

    def item(self) -> dict[str, Any]:
        """The raw item the input contract turns into a row (core.io.build_rows)."""
        return {"id": self.abstract_id, "title": self.title, "abstract": self.abstract,
                "notes": self._notes,
                "changed": any(not n.startswith("abstract_id") for n in self._notes)}


class BatchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    items: list[AbstractIn] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_ids(self) -> BatchIn:
        seen: set[str] = set()
        for item in self.items:
            if item.abstract_id is not None:
                if item.abstract_id in seen:
                    raise ValueError(f"duplicate abstract_id {item.abstract_id!r}")
                seen.add(item.abstract_id)
        return self

    def rows(self) -> list[InputRow]:
        """Generated IDs never equal a given one (nor each other): core.contract."""
        return build_rows(item.item() for item in self.items)


class BatchOut(BaseModel):
    count: int
    results: list[AbstractRecord]


JobStatus = Literal["queued", "running", "done", "failed"]


class JobOut(BaseModel):
    id: str
    status: JobStatus
    total: int
    done: int
    created_at: float
    started_at: float | None = None
    finished_at: float | None = None
    error: str | None = None
    results: list[AbstractRecord] | None = Field(
        None, description="The records, in input order, once the job is done"
    )


# ── the service behind the routes ────────────────────────────────────────────────────────


class Capacity:
    """Abstracts in flight, bounded. Online requests are admitted or refused at once; the
    job worker waits for room. A request larger than the bound runs only on an idle server."""

    def __init__(self, limit: int):
        self.limit = limit
        self.used = 0
        self._cond = threading.Condition()

    def _fits(self, n: int) -> bool:
        return self.used == 0 or self.used + n <= self.limit

    def try_acquire(self, n: int) -> bool:
        with self._cond:
            if not self._fits(n):
                return False
            self.used += n
            return True

    def acquire(self, n: int, stop: threading.Event) -> bool:
        with self._cond:
            while not self._fits(n):
                if stop.is_set():
                    return False
                self._cond.wait(timeout=0.5)
            self.used += n
            return True

    def release(self, n: int) -> None:
        with self._cond:
            self.used -= n
            self._cond.notify_all()


@dataclass
class Job:
    id: str
    rows: list[InputRow]
    created_at: float = field(default_factory=time.time)
    status: JobStatus = "queued"
    started_at: float | None = None
    finished_at: float | None = None
    error: str | None = None
    results: list[dict] = field(default_factory=list)

    def view(self) -> dict[str, Any]:
        return {
            "id": self.id, "status": self.status,
            "total": len(self.rows), "done": len(self.results),
            "created_at": self.created_at, "started_at": self.started_at,
            "finished_at": self.finished_at, "error": self.error,
            "results": self.results if self.status == "done" else None,
        }


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}".rstrip(": ")


class Service:
    """The models, the capacity bound, the job store and its worker thread."""

    def __init__(
        self,
        api: ApiSettings,
        settings: Settings | None = None,
        pipeline_factory: Callable[[Settings], Any] | None = None,
    ):
        self.api = api
        self.settings = settings
        self.pipeline_factory = pipeline_factory
        self.pipeline: Any = None
        self.load_error: str | None = None
        self.loaded = threading.Event()  # set when loading ended, in success or failure
        self.capacity = Capacity(api.max_in_flight)
        self.jobs: OrderedDict[str, Job] = OrderedDict()
        self._jobs_lock = threading.Lock()
        self._job_queue: queue.Queue[str] = queue.Queue()
        self._stop = threading.Event()
        self._latency_ema: float | None = None  # seconds per admitted request
        self._threads: list[threading.Thread] = []

    # life cycle
    def start(self) -> None:
        for target, name in ((self._load, "model-loader"), (self._job_loop, "job-worker")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        self._job_queue.put("")  # wake the job worker
        for thread in self._threads:
            thread.join(timeout=5)

    def _load(self) -> None:
        start = time.perf_counter()
        try:
            if self.settings is None:
                self.settings = load_settings(self.api.config)
            if self.pipeline_factory is None:
                from graph.pipeline import Pipeline

                self.pipeline_factory = Pipeline
            pipeline = self.pipeline_factory(self.settings)
            pipeline.warm_up()
            self.pipeline = pipeline
            log.info("ready: models loaded in %.1f s", time.perf_counter() - start)
        except Exception as exc:  # noqa: BLE001 - reported by /ready, the server stays up
            self.load_error = _first_line(exc)
            log.error("model loading failed: %s", self.load_error)
        finally:
            self.loaded.set()

    @property
    def ready(self) -> bool:
        return self.pipeline is not None

    # admission
    def retry_after(self) -> int:
        """Seconds until a slot is likely free: about one request's latency."""
        return max(1, min(60, math.ceil(self._latency_ema or 1.0)))

    def _require_ready(self) -> Any:
        if self.pipeline is not None:
            return self.pipeline
        if self.load_error:
            raise HTTPException(503, f"models failed to load: {self.load_error}")
        raise HTTPException(503, "models are loading; retry shortly", headers={"Retry-After": "5"})

    def process(self, rows: list[InputRow]) -> list[dict]:
        pipeline = self._require_ready()
        if not self.capacity.try_acquire(len(rows)):
            raise HTTPException(
                status.HTTP_429_TOO_MANY_REQUESTS,
                f"server busy ({self.capacity.used} abstracts in flight, limit "
                f"{self.capacity.limit}); retry after the Retry-After seconds",
                headers={"Retry-After": str(self.retry_after())},
            )
        start = time.perf_counter()
        try:
            return pipeline.process(rows, run_id="api")
        finally:
            self.capacity.release(len(rows))
            elapsed = time.perf_counter() - start
            ema = self._latency_ema
            self._latency_ema = elapsed if ema is None else 0.8 * ema + 0.2 * elapsed

    # jobs
    def submit_job(self, rows: list[InputRow]) -> Job:
        with self._jobs_lock:
            if len(self.jobs) >= self.api.max_jobs:
                finished = [j.id for j in self.jobs.values() if j.status in ("done", "failed")]
                if not finished:
                    raise HTTPException(
                        status.HTTP_429_TOO_MANY_REQUESTS,
                        f"job store full ({self.api.max_jobs} unfinished jobs); retry later",
                        headers={"Retry-After": str(self.retry_after() * self.api.job_chunk)},
                    )
                del self.jobs[finished[0]]  # the oldest finished job goes first
            job = Job(id=uuid.uuid4().hex, rows=rows)
            self.jobs[job.id] = job
        self._job_queue.put(job.id)
        return job

    def get_job(self, job_id: str) -> Job | None:
        with self._jobs_lock:
            return self.jobs.get(job_id)

    def _job_loop(self) -> None:
        while not self._stop.is_set():
            job_id = self._job_queue.get()
            job = self.get_job(job_id)
            if job is None:
                continue
            self.loaded.wait()
            self._run_job(job)

    def _run_job(self, job: Job) -> None:
        job.status, job.started_at = "running", time.time()
        try:
            if self.pipeline is None:
                raise RuntimeError(f"models failed to load: {self.load_error}")
            chunk = self.api.job_chunk
            for i in range(0, len(job.rows), chunk):
                rows = job.rows[i : i + chunk]
                if not self.capacity.acquire(len(rows), self._stop):
                    raise RuntimeError("server shutting down")
                try:
                    job.results.extend(self.pipeline.process(rows, run_id=f"job-{job.id}"))
                finally:
                    self.capacity.release(len(rows))
            job.status = "done"
        except Exception as exc:  # noqa: BLE001 - the job records why it failed
            job.status, job.error = "failed", _first_line(exc)
            log.warning("job %s failed: %s", job.id, job.error)
        finally:
            job.finished_at = time.time()

    # description
    def models(self) -> dict[str, Any]:
        settings = self.settings
        if settings is None:
            raise HTTPException(503, f"models failed to load: {self.load_error}"
                                if self.load_error else "settings are loading; retry shortly")
        cfg = load_model_config(settings.classifier.model)
        info: dict[str, Any] = {"name": cfg.name, "kind": cfg.kind, "adapter_version": None}
        if self.ready:
            from tools.classifier.registry import get_classifier

            info = get_classifier(settings.classifier.model).info.model_dump()
        return {
            "ready": self.ready,
            "classifier": info,
            "verifier": settings.verifier.model_dump(),
            "preprocessing": settings.preprocessing.model_dump(),
            "diseases": settings.diseases.model_dump(),
            "citations": settings.citations.model_dump(),
            "limits": {
                "max_batch": self.api.max_batch,
                "max_job_items": self.api.max_job_items,
                "max_in_flight": self.api.max_in_flight,
                "max_abstract_chars": MAX_ABSTRACT_CHARS,
                "max_title_chars": MAX_TITLE_CHARS,
                "max_id_chars": MAX_ID_CHARS,
                "max_body_bytes": self.api.max_body_bytes,
            },
        }


# ── the app ──────────────────────────────────────────────────────────────────────────────


class BodyLimit:
    """413 for a request body over `limit` bytes, before anything parses it: a declared
    Content-Length over the limit is refused unread; a body streamed without one (or lying
    about it) is cut off as soon as the bytes received pass the limit."""

    def __init__(self, app: ASGIApp, limit: int):
        self.app, self.limit = app, limit

    def _error(self, size: str) -> HTTPException:
        return HTTPException(
            413,
            f"request body {size}: the limit is {self.limit:,} bytes "
            "(ONCOGRAPH_API_MAX_BODY_BYTES); split the request",
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.limit:
            error = self._error(f"of {int(declared):,} bytes")
            response = JSONResponse({"detail": error.detail}, status_code=error.status_code)
            await response(scope, receive, send)
            return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise self._error("streamed past the limit")  # FastAPI answers it
            return message

        await self.app(scope, limited, send)


def _short(value: Any) -> Any:
    """A validation error's `input`, cut to ECHO_CHARS and made encodable: a 422 never
    sends a large input (or an unencodable one) back."""
    if isinstance(value, str):
        value = replace_surrogates(value)[0]
        if len(value) <= ECHO_CHARS:
            return value
        return f"{value[:ECHO_CHARS]}… ({len(value):,} chars)"
    if isinstance(value, dict):
        items = list(value.items())
        short = {_short(str(k)): _short(v) for k, v in items[:10]}
        if len(items) > 10:
            short["…"] = f"{len(items)} keys"
        return short
    if isinstance(value, list | tuple):
        more = [f"… ({len(value)} items)"] if len(value) > 5 else []
        return [_short(v) for v in value[:5]] + more
    if value is None or isinstance(value, bool | int | float):
        return value
    return _short(str(value))


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    detail = [
        {"type": e.get("type"), "loc": [_short(part) for part in e.get("loc", ())],
         "msg": _short(e.get("msg", "")), "input": _short(e.get("input"))}
        for e in exc.errors()[:20]
    ]
    return JSONResponse({"detail": detail}, status_code=422)


def _too_large(n: int, limit: int, hint: str) -> HTTPException:
    return HTTPException(
        413,
        f"{n} abstracts > the limit of {limit}; {hint}",
    )


def create_app(
    api: ApiSettings | None = None,
    settings: Settings | None = None,
    pipeline_factory: Callable[[Settings], Any] | None = None,
) -> FastAPI:
    """The app; tests pass their own settings, `uvicorn graph.api:app` reads the environment."""
    api = api or ApiSettings.from_env()
    service = Service(api, settings, pipeline_factory)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service.start()
        if api.wait_ready:
            await anyio.to_thread.run_sync(service.loaded.wait)
        yield
        service.stop()

    app = FastAPI(
        title="OncoGraph API",
        version="1.0",
        description="Cancer / Non-Cancer classification of PubMed abstracts with diseases, "
        "citations and a summary: the same record as `python -m graph.run`.",
        lifespan=lifespan,
    )
    app.state.service = service
    app.add_middleware(BodyLimit, limit=api.max_body_bytes)
    # the decorator form: add_exception_handler's stub wants a handler of any Exception
    app.exception_handler(RequestValidationError)(_validation_error)

    def check_key(request: Request) -> None:
        if not api.key:
            return
        given = request.headers.get("x-api-key") or ""
        auth = request.headers.get("authorization") or ""
        if not given and auth.lower().startswith("bearer "):
            given = auth[7:].strip()
        if not hmac.compare_digest(given.encode(), api.key.encode()):
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED, "missing or wrong API key (X-API-Key header)",
                headers={"WWW-Authenticate": "Bearer"},
            )

    v1 = APIRouter(prefix="/v1", dependencies=[Depends(check_key)])

    @v1.post("/classify", response_model=AbstractRecord, summary="Classify one abstract")
    def classify(item: AbstractIn) -> dict:
        return service.process(build_rows([item.item()]))[0]

    @v1.post(
        "/batch", response_model=BatchOut, summary="Classify a batch of abstracts",
        responses={413: {"description": "More abstracts than ONCOGRAPH_API_MAX_BATCH"}},
    )
    def batch(body: BatchIn) -> dict:
        if len(body.items) > api.max_batch:
            raise _too_large(
                len(body.items), api.max_batch,
                f"split it into requests of at most {api.max_batch}, or POST it to /v1/jobs",
            )
        results = service.process(body.rows())
        return {"count": len(results), "results": results}

    @v1.post("/jobs", response_model=JobOut, status_code=202, summary="Start a batch job")
    def submit_job(body: BatchIn) -> dict:
        if len(body.items) > api.max_job_items:
            raise _too_large(
                len(body.items), api.max_job_items,
                f"split it into jobs of at most {api.max_job_items}, or use `python -m "
                "graph.stream` workers for large corpora",
            )
        return service.submit_job(body.rows()).view()

    @v1.get("/jobs/{job_id}", response_model=JobOut, summary="A job's status and results")
    def get_job(job_id: str) -> dict:
        job = service.get_job(job_id)
        if job is None:
            raise HTTPException(404, f"no job {job_id!r} (unknown, or evicted after finishing)")
        return job.view()

    @v1.get("/models", summary="Classifier, adapter version, thresholds and limits")
    def models() -> dict:
        return service.models()

    app.include_router(v1)

    @app.get("/health", summary="Liveness: the process answers")
    def health() -> dict:
        return {
            "status": "ok",
            "ready": service.ready,
            "in_flight": service.capacity.used,
            "jobs": len(service.jobs),
        }

    @app.get("/ready", summary="Readiness: models loaded")
    def ready() -> JSONResponse:
        if service.ready:
            return JSONResponse({"status": "ready"})
        if service.load_error:
            return JSONResponse({"status": "failed", "error": service.load_error}, status_code=503)
        return JSONResponse({"status": "loading"}, status_code=503, headers={"Retry-After": "5"})

    return app


def _app_from_env() -> FastAPI:
    """The module-level app; a bad ONCOGRAPH_API_* value stops start-up with one clear line."""
    try:
        return create_app()
    except ValidationError as exc:
        first = exc.errors()[0]
        field = str(first["loc"][0]).upper() if first["loc"] else "*"
        name = f"ONCOGRAPH_API_{field}"
        raise SystemExit(f"error: {name}: {first['msg']}") from None


app = _app_from_env()
