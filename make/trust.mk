# Trust under hostile input and concurrency (docs/input-contract.md).
.PHONY: hostile

hostile:  ## reports/trust/hostile.*: every hostile case against the CLI, API and stream workers (keyword-rule, ~1 min)
	$(PY) -m eval.hostile
