# Disease extraction (issue 4): adapter training, evaluation on NCBI/BC5CDR dev, tests.
.PHONY: diseases-train diseases-rules diseases-eval diseases-test

diseases-train:  ## LoRA-tune MiniLM for disease NER -> adapters/ner-minilm/ (~52 CPU-min)
	$(PY) -m finetune.train_ner

diseases-rules:  ## choose how dictionary and model combine, on the dev sets -> reports/diseases/rules.*
	$(PY) -m eval.disease_rules

diseases-eval:  ## P/R/F1 + throughput per route on the dev sets -> reports/diseases/
	$(PY) -m eval.diseases

diseases-test:
	$(PY) -m pytest -q tests/test_diseases.py tests/test_diseases_ner.py
