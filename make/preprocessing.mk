# Preprocessing, citation analysis and insight summaries (issue 5).
.PHONY: preprocessing-bench preprocessing-test run-report

preprocessing-bench:  ## abstracts/s on one core + census -> reports/preprocessing/bench.{json,md,png}
	$(PY) -m eval.bench_preprocess --passes 7 --baseline-rev 4d247ac

preprocessing-test:  ## preprocessing, citation and summary tests (incl. hypothesis properties)
	$(PY) -m pytest -q tests/test_preprocess.py tests/test_preprocess_properties.py \
		tests/test_citations.py tests/test_summary.py

run-report:  ## corpus breakdown of a run's output: make run-report RECORDS=outputs/example.jsonl
	$(PY) -m graph.run_report $(or $(RECORDS),outputs/example.jsonl)
