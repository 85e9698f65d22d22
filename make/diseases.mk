# Disease extraction (issues 4, 20): adapter training, rule choice by cross-validation,
# evaluation on NCBI/BC5CDR dev, error audit, training-cost check, tests.
.PHONY: diseases-train diseases-train-syn diseases-rules diseases-eval diseases-audit \
	diseases-model-cost diseases-engines diseases-candidate-syn diseases-normaliser diseases-speed \
	diseases-test

diseases-train:  ## LoRA-tune MiniLM for disease NER -> adapters/ner-minilm/ (~52 CPU-min)
	$(PY) -m finetune.train_ner

diseases-train-syn:  ## candidate: warm start + MEDIC synonym swaps -> adapters/trials/ner-minilm-syn/
	$(PY) -m finetune.train_ner --init adapters/ner-minilm --synonym-p 0.5 --epochs 2 \
		--lr 1.5e-4 --max-minutes 45 --out adapters/trials/ner-minilm-syn \
		--checkpoints checkpoints/ner-minilm-syn-ckpt

diseases-candidate-syn:  ## judge the synonym candidate against adapters/ner-minilm, each under its own CV rule -> reports/diseases/candidate_ner-minilm-syn.*
	nice -n 5 $(PY) -m eval.disease_candidate --candidate adapters/trials/ner-minilm-syn

diseases-rules:  ## choose the merge rule by 5-fold CV on dev docs, write it to configs/default.yaml -> reports/diseases/rules.*
	$(PY) -m eval.disease_rules

diseases-eval:  ## P/R/F1, concept F1, throughput per route on the dev sets -> reports/diseases/
	$(PY) -m eval.diseases

diseases-engines:  ## default route on torch vs ctranslate2 int8 NER, one interleaved run -> reports/diseases/engines.*
	nice -n 5 $(PY) -m eval.disease_engines --speed-docs 60 --repeats 3

diseases-normaliser:  ## fit the concept chooser on train mentions (priors out of fold), C by CV -> adapters/disease-chooser/, reports/diseases/normaliser.*
	nice -n 5 $(PY) -m eval.disease_normaliser

diseases-speed:  ## int8 NER schedules (1 window/call on 2 threads vs 2 windows at once), one interleaved run + rule -> reports/diseases/speed.*
	nice -n 5 $(PY) -m eval.disease_speed --speed-docs 60 --repeats 3

diseases-audit:  ## sort every dev error of the default route into a class -> reports/diseases/audit.*
	$(PY) -m eval.disease_audit

diseases-model-cost:  ## s/step of MiniLM vs Qwen2.5-0.5B token classifiers -> reports/diseases/model_cost.*
	$(PY) -m eval.disease_model_cost --batch 1 --tokens 128 --steps 1

diseases-test:
	$(PY) -m pytest -q tests/unit/test_diseases.py tests/unit/test_diseases_ner.py tests/unit/test_diseases_eval.py \
		tests/unit/test_diseases_ct2.py tests/unit/test_diseases_chooser.py \
		tests/unit/test_diseases_ct2_workers.py
