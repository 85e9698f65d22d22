# Every reported number has a target here that regenerates it from inputs.
# Topic targets live in make/*.mk.
PY ?= .venv/bin/python
export PYTHONUNBUFFERED = 1

.PHONY: setup test test-unit test-integration lint weights split train run schema
setup:  ## one command on a fresh machine: venv, pinned deps, offline weights
	bash scripts/setup.sh

test:  ## the test suite (what .ci/run calls): tests/unit and tests/integration
	$(PY) -m pytest -q

test-unit:  ## in-process tests only (no redis, no subprocesses)
	$(PY) -m pytest -q -m unit

test-integration:  ## redis-server, subprocesses and HTTP servers
	$(PY) -m pytest -q -m integration

lint:  ## ruff (line length 100), and mypy over every package (strict flags on core/)
	$(PY) -m ruff check .
	$(PY) -m mypy

weights:  ## download, verify and convert the pinned offline weights into the cache
	$(PY) -m tools.weights prepare qwen2.5-1.5b qwen2.5-0.5b minilm

split:  ## the fixed train/val/test split (finetune/splits/)
	$(PY) -m finetune.split --seed 13

train:  ## LoRA fine-tune the default classifier
	$(PY) -m finetune.train --model qwen2.5-1.5b

schema:  ## export the output record's JSON Schema
	$(PY) -m core.schema

run:  ## the main job on the embedded example input
	$(PY) -m graph.run --input examples/abstracts.csv --output outputs/example.jsonl --report-dir reports/run

include $(wildcard make/*.mk)

.PHONY: verifier-tune verifier-report reports readme
verifier-tune:  ## choose the verifier's threshold and rung under the fused decision (CV on val; writes the config when it differs; then decision-fit) -> reports/verifier/tuning.*
	nice -n 5 $(PY) -m eval.verifier_tuning --write-config

verifier-report:  ## the whole graph on the test split: re-query rate and its effect on accuracy (~11 CPU-min)
	$(PY) -m eval.verifier_effect

reports: classification-clipping classification-report classification-audit diseases-rules diseases-eval diseases-audit preprocessing-bench citations-llm verifier-tune decision-fit verifier-report decision-report serving-reports  ## every report

readme:  ## copy the report tables and a real output record into README.md
	$(PY) -m eval.readme
