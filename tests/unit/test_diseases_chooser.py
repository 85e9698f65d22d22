"""Concept chooser: candidates and features, out-of-fold priors, the fitted artefact."""

from __future__ import annotations

import json

import pytest

from eval.disease_normaliser import fit, oof_rows
from tools.diseases import extract_diseases, find_candidates, resolve
from tools.diseases.chooser import FEATURES, candidates
from tools.diseases.concept_index import (
    ConceptData,
    DocWords,
    MedicIndex,
    TrainMention,
    train_stats,
)
from tools.diseases.context_concepts import (
    CHOOSER_PATH,
    ChooserArtefactError,
    chooser_state,
    load_chooser,
    rechoose,
)
from tools.diseases.spans import Span
from tools.preprocess import preprocess

GENERAL, DRUG = "MESH:D011618", "MESH:D011605"  # Psychotic Disorders; Psychoses, Substance-Induced
DRUG_WORDS = frozenset({"cocaine", "induced", "drug", "dose", "withdrawal"})
CLINIC_WORDS = frozenset({"schizophrenia", "chronic", "clinic", "patient", "relapse"})


def _medic() -> MedicIndex:
    return MedicIndex(
        exact={"psychosis": {GENERAL: "synonym", DRUG: "synonym"}}, bag={},
        depth={GENERAL: 3, DRUG: 4}, words={GENERAL: frozenset(), DRUG: frozenset()},
        parents={DRUG: (GENERAL,)}, children={GENERAL: (DRUG,)},
    )


def _mentions(n_docs: int = 20) -> list[TrainMention]:
    """"psychosis" annotated as the drug-induced concept near drug words, else the general."""
    out = []
    for i in range(n_docs):
        drug = i % 2 == 0
        ctx = DRUG_WORDS if drug else CLINIC_WORDS
        out.append(TrainMention(f"doc{i}", "psychosis", frozenset({DRUG if drug else GENERAL}),
                                DRUG if drug else GENERAL, ctx, ctx))
    return out


def test_committed_chooser_follows_the_context():
    """Same string, same train counts for both concepts: the words around it decide."""
    model = load_chooser()
    stats = train_stats(_mentions())
    picks = {
        name: model.choose(candidates("psychosis", ctx, ctx, _medic(), stats, None))
        for name, ctx in (("drug", frozenset({"cocaine", "induced", "dose"})),
                          ("clinic", frozenset({"schizophrenia", "patient", "chronic"})))
    }
    assert picks == {"drug": DRUG, "clinic": GENERAL}


def test_fitted_on_synthetic_rows_the_chooser_uses_context():
    data = ConceptData(_medic(), _mentions(40), train_stats(_mentions(40)))
    rows = oof_rows(data, None, k=5, seed=0)
    model = fit(rows, 1.0)
    stats = data.stats
    assert model.choose(candidates("psychosis", DRUG_WORDS, DRUG_WORDS, _medic(), stats,
                                   None)) == DRUG
    assert model.choose(candidates("psychosis", CLINIC_WORDS, CLINIC_WORDS, _medic(), stats,
                                   None)) == GENERAL


def test_out_of_fold_priors_differ_from_in_sample():
    """A string seen in one train document only: in-sample its prior names the answer,
    out of fold the prior has never seen it."""
    mentions = [*_mentions(10),
                TrainMention("lonely", "cocaine psychosis", frozenset({DRUG}), DRUG,
                             DRUG_WORDS, DRUG_WORDS)]
    data = ConceptData(_medic(), mentions, train_stats(mentions))
    oof = {m.doc: cs for m, cs in oof_rows(data, None, k=5, seed=0)}
    in_sample = candidates("cocaine psychosis", DRUG_WORDS, DRUG_WORDS, data.medic, data.stats,
                           None)
    assert [c.values["train_share"] for c in in_sample if c.concept_id == DRUG] == [0.5]
    assert oof["lonely"] == []  # unseen string, no MEDIC name: no candidate at all
    shares = {c.concept_id: c.values["train_share"] for c in oof["doc0"]}
    assert 0 < shares[DRUG] < 0.5 + 1e-9 and set(shares) >= {DRUG, GENERAL}


def test_document_words_around_a_span():
    text = "Cocaine induced psychosis was seen; the patients recovered."
    words = DocWords.of(text)
    start = text.index("psychosis")
    around = words.around(start, start + len("psychosis"))
    assert {"cocaine", "induced", "seen", "patient", "recovered"} <= around
    assert "psychosis" not in around and "the" not in around


@pytest.mark.parametrize("content, message", [
    (None, "not found"),
    ("{not json", "unreadable"),
    (json.dumps({"features": ["other"], "coef": [1.0]}), "other features"),
    (json.dumps({"features": list(FEATURES), "mean": [0.0]}), "malformed"),
    (json.dumps({"features": list(FEATURES), "mean": [0.0], "scale": [1.0], "coef": [1.0],
                 "intercept": 0.0}), "wrong number"),
])
def test_bad_artefact_is_a_clear_error_and_the_rules_stand(tmp_path, content, message):
    path = tmp_path / "chooser.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ChooserArtefactError, match=message):
        load_chooser(path)
    span = Span(0, 9, GENERAL, "dictionary")
    assert rechoose([span], "psychosis after cocaine", None, path=path) == [span]  # type: ignore[arg-type]
    assert chooser_state(path).startswith("off (") and message in chooser_state(path)


def test_committed_artefact_loads_and_keeps_spans(data_dir):
    from tools.diseases import model_info

    assert chooser_state(CHOOSER_PATH).startswith("on (")
    [chooser] = [i for i in model_info() if i.kind == "disease-concept-chooser"]
    assert chooser.name == "MEDIC concept chooser" and len(chooser.adapter_version or "") == 12
    doc = preprocess("Hereditary breast cancer",
                     "Cocaine-induced psychosis and breast and ovarian cancer were studied.")
    found = find_candidates([doc], ("dictionary",))[0]
    on, off = resolve(found, chooser=True), resolve(found, chooser=False)
    assert [(m.start, m.end) for m in on] == [(m.start, m.end) for m in off]
    assert all(m.concept_id.startswith(("MESH:", "OMIM:")) for m in on)
    assert extract_diseases(doc, routes=("dictionary",)) == off  # adopted with the model only


def test_pipeline_without_artefact_keeps_the_rules_and_the_record_says_so(
        data_dir, monkeypatch, tmp_path, caplog):
    import tools.diseases.context_concepts as context_concepts
    from tools.diseases import model_info

    doc = preprocess("Hereditary breast cancer", "Psychosis after cocaine was studied.")
    found = find_candidates([doc], ("dictionary",))[0]
    rules = resolve(found, chooser=False)
    monkeypatch.setattr(context_concepts, "CHOOSER_PATH", tmp_path / "missing.json")
    with caplog.at_level("WARNING"):
        mentions = resolve(found, chooser=True)
    assert mentions == rules and "concept chooser not found" in caplog.text
    [chooser] = [i for i in model_info() if i.kind == "disease-concept-chooser"]
    assert chooser.name.startswith("MEDIC concept chooser: off (")
    assert chooser.adapter_version is None
