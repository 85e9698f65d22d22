"""Outputs that know what wrote them, and one writer per output.

`<output>.meta.json` names the classifier, its adapter version and a hash of every setting
that shapes a record; a resume under different ones is refused (mixing two models in one
file is silent corruption) unless forced. `<output>.lock` holds an advisory lock
(fcntl.flock) for the whole run, so a second writer is refused instead of writing every
record twice. All of it happens before any model loads.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from core.settings import Settings, load_model_config

# settings that cannot change a record: where data lives, how many threads, where checkpoints go
_NOT_IN_HASH = {"data_dir", "run"}
IDENTITY = ("model", "adapter_version", "config_hash")


class OutputError(Exception):
    """The output cannot be used; the message is one line for the user."""


def run_meta(settings: Settings) -> dict[str, Any]:
    """The identity of the records a run writes."""
    cfg = load_model_config(settings.classifier.model)
    shaping = settings.model_dump(mode="json", exclude=_NOT_IN_HASH)
    shaping["classifier"].pop("threads", None)
    shaping["model_config"] = cfg.model_dump(mode="json")
    digest = hashlib.sha256(json.dumps(shaping, sort_keys=True).encode()).hexdigest()
    return {"model": cfg.name, "kind": cfg.kind, "adapter_version": cfg.adapter_version(),
            "config_hash": digest[:16]}


def sidecar(output: Path) -> Path:
    return output.with_name(output.name + ".meta.json")


def _read_meta(path: Path) -> dict[str, Any] | None:
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) else None


def _describe(meta: dict[str, Any]) -> str:
    return (f"model {meta.get('model')!r} (adapter {meta.get('adapter_version')}, "
            f"config {meta.get('config_hash')})")


def _check_identity(output: Path, meta: dict[str, Any], force: bool) -> None:
    """Refuse to append records of another identity; `force` moves the old output aside."""
    if not output.exists() or output.stat().st_size == 0:
        return
    previous = _read_meta(sidecar(output))
    if previous is not None and all(previous.get(k) == meta[k] for k in IDENTITY):
        return
    written = (f"was written by {_describe(previous)}" if previous
               else "has records but no readable .meta.json saying which model wrote them")
    if not force:
        raise OutputError(
            f"{output} {written}; this run is {_describe(meta)}: resume with the same model and "
            "config, choose another --output, or add --force to start it afresh"
        )
    backup = output.with_name(output.name + ".bak")
    os.replace(output, backup)
    print(f"--force: {output} {written}; moved to {backup}, starting afresh", file=sys.stderr)


def _write_meta(output: Path, meta: dict[str, Any]) -> None:
    path = sidecar(output)
    previous = _read_meta(path) or {}
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    data = {**meta, "created_at": previous.get("created_at", now), "updated_at": now}
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


@contextmanager
def claim_output(output: Path, source: Path, meta: dict[str, Any], force: bool) -> Iterator[None]:
    """Hold `output` for one run: refused when it is the input, unwritable, locked by another
    run or written under another identity. The lock lasts until the context exits."""
    if source.exists() and output.resolve() == source.resolve():
        raise OutputError(f"--output {output} is the input file; choose another output path")
    if output.is_dir():
        raise OutputError(f"--output {output} is a folder; give a .jsonl file path")
    lock_path = output.with_name(output.name + ".lock")
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        lock = lock_path.open("a")
    except OSError as exc:
        raise OutputError(f"cannot write {output}: {exc.strerror or exc}") from None
    try:
        try:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise OutputError(
                f"{output} is being written by another run (it holds {lock_path}); wait for it "
                "to finish or choose another --output"
            ) from None
        try:
            with output.open("a", encoding="utf-8"):
                pass
            _check_identity(output, meta, force)
            _write_meta(output, meta)
        except OSError as exc:
            raise OutputError(f"cannot write {output}: {exc.strerror or exc}") from None
        yield
    finally:
        lock.close()
