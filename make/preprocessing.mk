# Preprocessing, citation analysis and insight summaries (issue 5).
.PHONY: preprocessing-bench preprocessing-test run-report citations-llm citations-engines

preprocessing-bench:  ## abstracts/s on one core + census -> reports/preprocessing/bench.{json,md,png}
	$(PY) -m eval.bench_preprocess --passes 7 --baseline-rev 4d247ac

preprocessing-test:  ## preprocessing, citation and summary tests (incl. hypothesis properties)
	$(PY) -m pytest -q tests/unit/test_preprocess.py tests/unit/test_preprocess_properties.py \
		tests/unit/test_citations.py tests/unit/test_chat_model.py tests/unit/test_chat_ct2.py \
		tests/unit/test_summary.py

citations-llm:  ## citation LLM vs rules: agreement, fallbacks, s per abstract with citations -> reports/citations/llm.{json,md}
	nice -n 5 $(PY) -m eval.citations_llm $(ARGS)

citations-engines:  ## citation chat model on torch vs ctranslate2 int8, interleaved, + adoption rule -> reports/citations/engines.{json,md}
	nice -n 5 $(PY) -m eval.citations_engines --n 8

run-report:  ## corpus breakdown of a run's output: make run-report RECORDS=outputs/example.jsonl
	$(PY) -m graph.run_report $(or $(RECORDS),outputs/example.jsonl)
