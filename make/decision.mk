# The fused Cancer decision (docs/decision.md): fit on val, report on test and the OOD dev check.
.PHONY: decision-fit decision-ood decision-report
decision-fit:  ## fit the fused decision + operating point on val (held-out CV) -> adapters/decision/, reports/decision/fit.*
	$(PY) -m eval.decision_fit

decision-ood:  ## every model, then the whole graph, on the out-of-domain dev set (NCBI + BC5CDR dev; cached) -> reports/verifier/ood.*
	nice -n 5 $(PY) -m eval.ood --predict keyword-rule tfidf-logreg minilm qwen2.5-0.5b qwen2.5-1.5b
	nice -n 5 $(PY) -m eval.verifier_effect --ood

decision-report:  ## the fused decision beside every model on test and on the OOD dev check -> reports/decision/{test,ood}.*
	$(PY) -m eval.decision_report
