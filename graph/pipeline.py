"""Run many abstracts through the graph: the one batch driver the CLI, API and workers share.

Batching: `graph.batch` runs up to `max_concurrency` per-abstract graphs in threads; their
classifier calls meet in the tool's MicroBatcher and run as one forward pass. The graph
stays per-abstract (what Studio shows and other apps import) and the model still sees
batches.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterable

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver

from core.io import InputRow
from core.schema import AbstractRecord
from core.settings import Settings, load_settings
from graph.builder import compile_graph

log = logging.getLogger(__name__)


def error_record(abstract_id: str, message: str) -> dict:
    """A row that could not be processed still gets a record saying why."""
    first_line = message.strip().splitlines()[0] if message.strip() else "unknown error"
    record = AbstractRecord(abstract_id=abstract_id, status=f"error: {first_line}")
    return record.model_dump(mode="json")


def with_contract(record: dict, row: InputRow) -> dict:
    """Add what the input contract changed: its notes and, when it changed the text, the text
    itself (the record's offsets index it: core.contract)."""
    if row.notes:
        record["notes"] = [*row.notes, *record.get("notes", [])]
    if row.changed:
        record["text"] = {"title": row.title, "abstract": row.abstract}
    return record


class Pipeline:
    def __init__(self, settings: Settings | None = None,
                 checkpointer: BaseCheckpointSaver | None = None) -> None:
        self.settings = settings or load_settings()
        self.graph = compile_graph(checkpointer)
        self.checkpointing = checkpointer is not None
        self.ready = False

    def warm_up(self) -> None:
        """Load every model now (API start-up, before timing a run), not on the first request:
        the warm-up abstract loads the classifier and the disease models; the normaliser's
        character index (4 s to build), the verifier's ladder models and the citation LLM
        load here too, since only some abstracts reach them (the first such request used to
        pay their load: 6-8 s against 2.2 s)."""
        from tools.chat_model import chat_model_for
        from tools.classifier.tool import batcher_for

        start = time.perf_counter()
        self.process(
            [InputRow("warm-up", "Lung cancer screening",
                      "Non-small cell lung cancer (NSCLC) is common.")],
            run_id="warm-up",
        )
        if {"model", "llm"} & set(self.settings.diseases.routes):  # routes that normalise
            from tools.diseases.lexicon import load_vocabulary
            from tools.diseases.normalise import char_index

            char_index(load_vocabulary())
        verifier = self.settings.verifier
        for step in verifier.ladder[: verifier.max_requeries]:
            if step.model:
                batcher_for(step.model)
        if self.settings.citations.llm:
            chat_model_for(self.settings.classifier.model, self.settings.citations.llm_model,
                           self.settings.chat.backend)
        self.ready = True
        log.info("models loaded in %.1f s", time.perf_counter() - start)

    def process(self, rows: Iterable[InputRow], run_id: str = "run") -> list[dict]:
        """One record per row, in input order; a failing row never takes the others down.

        Checkpoint threads are `<run_id>-<uuid>:<position>:<abstract_id>`: unique per call,
        so two runs (or two API requests) never share a thread, whatever their IDs.
        """
        rows = list(rows)
        call = f"{run_id}-{uuid.uuid4().hex[:12]}"
        todo = [(n, r) for n, r in enumerate(rows) if not r.error]
        configs: list[RunnableConfig] = [
            {
                "configurable": {"settings": self.settings,
                                 "thread_id": f"{call}:{n}:{r.abstract_id}"},
                "max_concurrency": self.settings.run.max_concurrency,
                "run_name": f"oncograph:{r.abstract_id}",
            }
            for n, r in todo
        ]
        inputs = [{"abstract_id": r.abstract_id, "title": r.title, "abstract": r.abstract}
                  for _, r in todo]
        outputs = self.graph.batch(inputs, configs, return_exceptions=True) if todo else []
        by_position: dict[int, dict] = {}
        for (n, row), out in zip(todo, outputs, strict=True):
            if isinstance(out, BaseException):
                log.warning("abstract %s failed: %s", row.abstract_id, out)
                by_position[n] = error_record(row.abstract_id, f"{type(out).__name__}: {out}")
            else:
                by_position[n] = out["record"]
        return [
            with_contract(error_record(r.abstract_id, r.error) if r.error else by_position[n], r)
            for n, r in enumerate(rows)
        ]
