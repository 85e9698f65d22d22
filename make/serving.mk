# Serving and scale (docs/serving.md). Run the measurements on an otherwise idle machine.
.PHONY: serve worker loadtest bench-serving serving-reports

serve:  ## the REST API on http://127.0.0.1:8000 (docs at /docs)
	$(PY) -m uvicorn graph.api:app --host 127.0.0.1 --port 8000

worker:  ## one Redis Streams worker (ONCOGRAPH_REDIS_URL, default redis://127.0.0.1:6379/0)
	$(PY) -m graph.stream work

loadtest:  ## reports/serving/loadtest.*: /v1/classify at 1 and 20 clients, default model
	$(PY) -m eval.loadtest --single 15 --concurrent 40 --clients 20 --max-seconds 200

bench-serving:  ## reports/serving/throughput*.*: CLI vs stream workers by batch size and workers
	$(PY) -m eval.bench_serving --n 16 --batch-sizes 1,8,16 --workers 1 --name throughput
	$(PY) -m eval.bench_serving --model qwen2.5-0.5b --n 24 --batch-sizes 8 --workers 2 --name throughput-0.5b

serving-reports: loadtest bench-serving
