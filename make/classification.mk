# Classification: fit/train the classifiers, benchmark them, and the comparison report.
.PHONY: classification-fit classification-train-minilm classification-train-0.5b \
	classification-bench classification-report classification-report-cheap \
	classification-report-cached classification-calibrate classification-audit \
	classification-clipping classification-trial-two-pass classification-trial-two-pass-train \
	classification-trial-top14-train classification-trial-all-layers-train \
	classification-trial-all-layers classification-backends classification-graph-ceiling

classification-fit:  ## fit the TF-IDF + logistic regression reference (seconds)
	$(PY) -m finetune.train --model tfidf-logreg

classification-train-minilm:  ## LoRA + head on all-MiniLM-L6-v2 (minutes on 2 cores)
	$(PY) -m finetune.train --model minilm

classification-train-0.5b:  ## LoRA label-word tuning of Qwen2.5-0.5B
	$(PY) -m finetune.train --model qwen2.5-0.5b

classification-calibrate:  ## refit an adapter's val Platt calibration: make classification-calibrate MODEL=minilm
	$(PY) -m eval.calibrate --model $(or $(MODEL),qwen2.5-1.5b)

classification-clipping:  ## how the 1.5B clips long abstracts: head-only vs head + tail on val (~10 CPU-min)
	$(PY) -m eval.clipping --model qwen2.5-1.5b

classification-bench:  ## abstracts/s at several batch sizes (first 64 val abstracts)
	$(PY) -m eval.bench_classifier --model minilm
	$(PY) -m eval.bench_classifier --model tfidf-logreg
	$(PY) -m eval.bench_classifier --model keyword-rule
	$(PY) -m eval.bench_classifier --model qwen2.5-0.5b --batch-sizes 1 8
	$(PY) -m eval.bench_classifier --model qwen2.5-1.5b --batch-sizes 1 8

classification-report-cheap:  ## compare the fast models only (seconds)
	$(PY) -m eval.compare --models keyword-rule tfidf-logreg minilm

classification-report:  ## every model and variant on the test split (reuses cached predictions)
	$(PY) -m eval.compare

classification-report-cached:  ## re-render the report from cached predictions only (seconds)
	$(PY) -m eval.compare --cached-only

classification-audit:  ## sort the test errors by text evidence, cached predictions only -> reports/classification/audit.*
	$(PY) -m eval.error_audit

classification-trial-two-pass-train:  ## a second pass from the top-14 adapter -> adapters/trials/qwen2.5-1.5b-two-pass/ (~67 CPU-min)
	$(PY) -m finetune.train --model qwen2.5-1.5b-two-pass --init-adapter adapters/trials/qwen2.5-1.5b-top14

classification-trial-two-pass:  ## the top-14 adapter + a second pass (a trial) on test -> reports/classification/trials/two-pass/
	$(PY) -m eval.compare --models keyword-rule qwen2.5-1.5b-top14 qwen2.5-1.5b-two-pass \
		--out reports/classification/trials/two-pass

classification-trial-top14-train:  ## the default recipe until 2026-11-30: LoRA r16 on the top 14 layers -> adapters/trials/qwen2.5-1.5b-top14/ (~81 CPU-min)
	$(PY) -m finetune.train --model qwen2.5-1.5b-top14

classification-trial-all-layers-train:  ## LoRA r16 on all 28 layers (a trial; resumable) -> adapters/trials/qwen2.5-1.5b-all-layers/ (~105 CPU-min)
	$(PY) -m finetune.train --model qwen2.5-1.5b-all-layers --resume

classification-trial-all-layers:  ## where the LoRA goes, on test: top 14 layers at r16, all 28 at r8 (the default), all 28 at r16 -> reports/classification/trials/all-layers/
	$(PY) -m eval.compare --models keyword-rule qwen2.5-1.5b-top14 qwen2.5-1.5b qwen2.5-1.5b-all-layers \
		--out reports/classification/trials/all-layers

classification-backends:  ## torch vs the ctranslate2 int8 engine, 1.5B and 0.5B: speed vs the bf16 ceiling, test agreement -> reports/classification/backends_*.* (~30 CPU-min; converts once into ~/.cache/oncograph/ct2)
	$(PY) -m eval.calibrate --model qwen2.5-1.5b --backend ctranslate2
	$(PY) -m eval.bench_backends --model qwen2.5-1.5b --backends torch ctranslate2 --n 16 --batch-sizes 1 8 16 --split test
	$(PY) -m eval.calibrate --model qwen2.5-0.5b --backend ctranslate2
	$(PY) -m eval.bench_backends --model qwen2.5-0.5b --backends torch ctranslate2 --n 16 --batch-sizes 1 8 16 --split test

classification-graph-ceiling:  ## the whole graph (default config) per classifier backend over the bf16 ceiling -> reports/classification/graph_ceiling.*
	$(PY) -m eval.bench_graph --n 16 --backends ctranslate2

classification-dtype:  ## bf16 vs fp32 for the torch models on this CPU: speed and agreement -> reports/classification/dtype.*
	$(PY) -m eval.bench_dtype --n 16 --agreement-n 100
