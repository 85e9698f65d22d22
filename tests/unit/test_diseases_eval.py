"""Disease evaluation machinery: CV folds, rule selection, the error audit, concept F1,
the config writer and the synonym-swap augmentation (offsets index the text)."""

from __future__ import annotations

import random

import numpy as np
import pytest

from eval.disease_audit import GoldSpan, PredSpan, classify, is_short_form
from eval.disease_rules import choose, cross_validate, document_folds, write_config
from eval.diseases import score
from finetune.ner_augment import replace_mentions
from tools.diseases.corpus import GoldDoc, GoldMention
from tools.diseases.lexicon import load_vocabulary

BREAST, OVARY = "MESH:D001943", "MESH:D010051"


@pytest.fixture(scope="module")
def vocab(data_dir):
    return load_vocabulary(str(data_dir))


def test_folds_are_whole_documents_deterministic_and_balanced_per_corpus():
    groups = {"a": [f"p{i}" for i in range(23)], "b": [f"q{i}" for i in range(7)]}
    folds = document_folds(groups, k=5, seed=3)
    again = document_folds({g: list(reversed(ids)) for g, ids in groups.items()}, k=5, seed=3)
    assert folds == again  # the input order does not matter
    for g, ids in groups.items():
        assert set(folds[g]) == set(ids)  # each document in exactly one fold
        sizes = np.bincount(list(folds[g].values()), minlength=5)
        assert sizes.max() - sizes.min() <= 1
    assert document_folds(groups, k=5, seed=4) != folds
    dup = document_folds({"a": ["x", "x", "y", "z"]}, k=2)
    assert set(dup["a"]) == {"x", "y", "z"}  # a duplicated PMID is one document
    with pytest.raises(ValueError):
        document_folds(groups, k=1)
    with pytest.raises(ValueError):
        document_folds({"c": ["only"]}, k=2)


def test_selection_and_cross_validation_score_held_out_documents_only():
    # rule 0: half right everywhere; rule 1: one huge perfect document (a0), else nothing in a
    n = 6
    counts = {c: np.zeros((2, n, 3), dtype=np.int64) for c in ("a", "b")}
    for c in counts:
        counts[c][:, :] = (1, 2, 2)
    counts["a"][1, :] = (0, 2, 2)
    counts["a"][1, 0] = (50, 50, 50)
    assert choose(counts, {c: np.ones(n, bool) for c in counts}) == 1  # a0 decides in-sample
    cv = cross_validate(counts, {c: [f"{c}{i}" for i in range(n)] for c in counts}, k=3, repeats=2)
    # a0's fold (a0 + one more a doc) is scored by rule 0, chosen without a0: 2 of 4; the
    # other folds by rule 1: 0 of 8. Out of fold a = (2, 12, 12) -> F1 1/6, whatever the seed
    assert cv["f1"]["a"] == pytest.approx(1 / 6, abs=1e-4)
    assert cv["f1"]["b"] == pytest.approx(0.5)
    assert len(cv["per_repeat"]) == 2 and len(cv["chosen_in_folds"]) == 6


def test_audit_sorts_each_error_into_one_class():
    text = "Breast and ovarian cancer, SJS and VHL disease; tumor death in a diabetic mouse."
    #       0         1         2         3         4         5         6         7
    gold = [
        GoldSpan(0, 25, "CompositeMention", frozenset({BREAST, OVARY})),  # composite missed
        GoldSpan(27, 30, "SpecificDisease", frozenset({"MESH:D013262"})),  # SJS: abbreviation
        GoldSpan(35, 46, "SpecificDisease", frozenset({"MESH:D006623"})),  # VHL disease: boundary
        GoldSpan(48, 53, "DiseaseClass", frozenset({"MESH:D009369"})),  # tumor: wrong concept
        GoldSpan(65, 73, "Modifier", frozenset({"MESH:D003920"})),  # diabetic: missed
    ]
    pred = [
        PredSpan(39, 46, "MESH:D006623"),  # "disease" inside "VHL disease"
        PredSpan(48, 53, "MESH:D009370"),  # right span, wrong concept
        PredSpan(54, 59, "MESH:D003643"),  # "death": no gold
    ]
    errors = classify(text, gold, pred, known=lambda s: s == "diabetic")
    kinds = sorted(e.kind for e in errors)
    assert kinds == sorted(["composite", "abbreviation", "boundary", "wrong concept",
                            "missed, known name", "spurious span"])
    unknown = classify(text, gold[4:], [], known=lambda s: False)
    assert [e.kind for e in unknown] == ["missed synonym"]
    assert classify(text, gold[3:4], [PredSpan(48, 53, "MESH:D009369")], known=bool) == []
    assert is_short_form("SJS") and is_short_form("G6PD") and not is_short_form("tumor")


def test_concept_f1_at_document_and_mention_level(vocab):
    text = "breast cancer and ovarian cancer"
    doc = GoldDoc("1", text, "", [GoldMention(0, 13, "breast cancer", "SpecificDisease", "D001943"),
                                  GoldMention(18, 32, "ovarian cancer", "SpecificDisease",
                                              "D010051|D001943")])
    # both spans exact; the second carries a concept outside its gold ids
    result = score([doc], [[(0, 13, BREAST, (BREAST,)),
                            (18, 32, "MESH:D009369", ("MESH:D009369",))]])
    assert result["exact"]["f1"] == 1.0
    assert result["mention_concept"] == {"precision": 0.5, "recall": 0.5, "f1": 0.5}
    # document level: gold {breast, ovary}, predicted {breast, neoplasms}
    assert result["doc_concept"] == {"precision": 0.5, "recall": 0.5, "f1": 0.5}
    # a composite prediction brings all its parts to the document's concept set
    both = score([doc], [[(0, 13, BREAST, (BREAST,)), (18, 32, OVARY, (BREAST, OVARY))]])
    assert both["mention_concept"]["f1"] == 1.0 and both["doc_concept"]["f1"] == 1.0


def test_config_writer_sets_the_four_values_and_keeps_comments(tmp_path):
    path = tmp_path / "default.yaml"
    path.write_text("diseases:\n  merge_priority: [dictionary, model, llm]  # why\n"
                    "  min_model_score: 0.95   # bar\n  min_dictionary_support: 0.02\n"
                    "  min_widen_score: 0.99\nother: 1\n")
    write_config({"priority": ["model", "dictionary", "llm"], "min_model_score": 0.9,
                  "min_dictionary_support": 0.1, "min_widen_score": None}, path)
    assert path.read_text() == ("diseases:\n  merge_priority: [model, dictionary, llm]  # why\n"
                                "  min_model_score: 0.9   # bar\n  min_dictionary_support: 0.1\n"
                                "  min_widen_score: null\nother: 1\n")


def test_synonym_swaps_keep_every_offset_on_the_text(vocab):
    title = "Breast cancer in men."
    abstract = "Male breast cancer (MBC) is rare; hemorrhagic cystitis and -1 stuff."
    doc = GoldDoc("9", title, abstract)
    text = doc.text
    for s, kind, cid in (("Breast cancer", "SpecificDisease", "D001943"),
                         ("breast cancer", "SpecificDisease", "D001943"),
                         ("MBC", "SpecificDisease", "D018567"),
                         ("hemorrhagic cystitis", "Disease", "D006470|D003556")):
        start = text.index(s, doc.mentions[-1].end if doc.mentions else 0)
        doc.mentions.append(GoldMention(start, start + len(s), s, kind, cid))
    for seed in range(20):
        new = replace_mentions(doc, vocab, random.Random(seed), p=1.0)
        assert len(new.mentions) == len(doc.mentions)
        assert all(new.text[m.start:m.end] == m.text for m in new.mentions)
        assert new.mentions[0].end <= len(new.title)  # the title mention stays in the title
        assert new.mentions[-1].text == "hemorrhagic cystitis"  # composite ids: never swapped
    assert replace_mentions(doc, vocab, random.Random(0), p=0.0).text == text
