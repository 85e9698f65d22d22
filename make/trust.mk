# Trust under hostile input and concurrency (docs/input-contract.md).
.PHONY: hostile hostile-baseline

hostile:  ## reports/trust/hostile.*: every hostile case against the CLI, API and stream workers (keyword-rule, ~1 min)
	$(PY) -m eval.hostile

hostile-baseline:  ## reports/trust/hostile-baseline.*: the same sweep against c9a4c52, before this work
	PY=$(PY) bash scripts/hostile_baseline.sh c9a4c52
