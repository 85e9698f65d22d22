"""Disease extraction: vocabulary, dictionary route, abbreviations, offsets, merging, LLM route."""

from __future__ import annotations

import pytest
from langchain_core.language_models.fake_chat_models import FakeListChatModel

from core.settings import MergeRule
from tools.diseases import disease_names, extract_batch, extract_diseases
from tools.diseases.abbrev import find_abbreviations
from tools.diseases.lexicon import load_vocabulary
from tools.diseases.llm import ground
from tools.diseases.ner import TokenScores, decode
from tools.diseases.spans import Span, admit, merge, widen
from tools.diseases.vocab import is_cancer_tree, key_of, readable_name
from tools.preprocess import preprocess

LUNG = "MESH:D008175"


@pytest.fixture(scope="module")
def vocab(data_dir):
    return load_vocabulary(str(data_dir))


def dict_only(title: str, abstract: str):
    return extract_diseases(preprocess(title, abstract), routes=("dictionary",))


def test_key_normalisation_handles_case_plural_hyphen_possessive():
    assert key_of("Alzheimer's Diseases") == key_of("alzheimer disease")
    assert key_of("non-small-cell  lung tumours") == key_of("Non small cell lung tumor")


def test_cancer_flag_and_readable_name(vocab):
    assert is_cancer_tree(["C04.588.894.797.520", "C08.381.540"])
    assert not is_cancer_tree(["C04.182.089"])  # Cysts are not cancer
    assert not is_cancer_tree(["C14.280"])
    assert not is_cancer_tree(["C04.182/C536528", "C07.320.440.185/C536528"])  # supplementary
    assert is_cancer_tree(["C04.557.470/C564219"])
    assert vocab.concepts[LUNG].readable == "Lung Cancer" and vocab.concepts[LUNG].is_cancer
    assert readable_name("Carcinoma, Non-Small-Cell Lung", ["Non-Small-Cell Lung Carcinoma"]) == (
        "Non-Small-Cell Lung Carcinoma"
    )


def test_concept_with_several_synonyms(vocab):
    mentions = dict_only("Lung neoplasms", "Pulmonary cancer, i.e. cancer of the lung, kills.")
    assert [m.concept_id for m in mentions] == [LUNG, LUNG, LUNG]
    assert disease_names(mentions) == ["Lung Cancer"]


def test_abbreviation_is_resolved_within_the_abstract(vocab):
    pairs = find_abbreviations("We treated non-small cell lung cancer (NSCLC) early.")
    assert [(p.short, p.long_start) for p in pairs] == [("NSCLC", 11)]
    abstract = ("Hereditary nonpolyposis colorectal cancer (HNPCC) is common. "
                "Carriers of HNPCC variants were followed.")
    mentions = dict_only("", abstract)
    hnpcc = [m for m in mentions if m.text == "HNPCC"]
    assert len(hnpcc) == 2
    assert {m.concept_id for m in hnpcc} == {mentions[0].concept_id}
    assert mentions[0].text == "Hereditary nonpolyposis colorectal cancer"


def test_short_form_defined_as_non_disease_is_not_a_mention(vocab):
    assert [m.text for m in dict_only("", "Patients with CHF.")] == ["CHF"]  # heart failure
    defined = dict_only("", "Chick heart fibroblasts (CHF) were grown. CHF divided.")
    assert defined == []
    mr = dict_only("", "Mitral regurgitation (MR) was severe in MR patients.")
    assert [(m.text, m.source) for m in mr] == [
        ("Mitral regurgitation", "dictionary"), ("MR", "dictionary+abbreviation"),
        ("MR", "dictionary+abbreviation"),
    ]


def test_nested_names_take_the_longest_match(vocab):
    mentions = dict_only("", "Women with hereditary breast and ovarian cancer syndrome.")
    assert [m.text for m in mentions] == ["hereditary breast and ovarian cancer syndrome"]


def test_overlapping_routes_merge_by_priority_then_length():
    spans = [
        Span(0, 13, "MESH:D001943", "dictionary"),
        Span(0, 20, "MESH:D001943", "dictionary"),
        Span(5, 13, "MESH:D001943", "model"),
        Span(30, 40, LUNG, "llm"),
    ]
    assert merge(spans) == [spans[1], Span(30, 40, LUNG, "llm")]  # dictionary, then longer
    assert merge(spans[2:]) == spans[2:]  # a model span where the dictionary found nothing
    assert merge(spans, priority=("model", "dictionary")) == [spans[2], spans[3]]


def test_token_scores_support_is_the_mean_over_the_span_tokens():
    scores = TokenScores([(0, 4), (5, 11), (12, 15)], [0, 1, 2], [0.1, 0.9, 0.7])
    assert scores.support(5, 15) == pytest.approx(0.8)
    assert scores.support(0, 4) == pytest.approx(0.1)
    assert scores.support(20, 30) == 0.0  # no token there: no backing


def test_merge_rule_bars_weak_model_spans_and_unbacked_dictionary_matches():
    death = Span(0, 5, "MESH:D003643", "dictionary")
    cancer = Span(10, 21, LUNG, "dictionary")
    sure, unsure = Span(30, 35, LUNG, "model", 0.95), Span(40, 45, LUNG, "model", 0.55)
    rule = MergeRule(min_model_score=0.9, min_dictionary_support=0.2)
    support = {(0, 5): 0.05, (10, 21): 0.97}
    kept = admit([death, cancer, sure, unsure], rule, lambda s, e: support[(s, e)])
    assert kept == [cancer, sure]
    # without the model's token scores (model route off) the dictionary is not vetoed
    assert admit([death, cancer], rule) == [death, cancer]
    # the default rule admits everything: the plain union
    assert admit([death, unsure], MergeRule(), lambda s, e: 0.0) == [death, unsure]


def test_widening_takes_the_model_bounds_only_when_sure_and_without_swallowing_a_neighbour():
    # "type IID von Willebrand disease": the dictionary knows the name, the model the extent
    vwd = Span(10, 32, "MESH:D014842", "dictionary")
    extent = Span(0, 32, "MESH:D014842", "model", 0.97)
    assert widen([vwd], [vwd, extent], MergeRule(min_widen_score=0.95)) == [
        Span(0, 32, "MESH:D014842", "dictionary")]
    assert widen([vwd], [vwd, extent], MergeRule(min_widen_score=0.99)) == [vwd]  # unsure
    assert widen([vwd], [vwd, extent], MergeRule()) == [vwd]  # off by default
    # "breast and ovarian cancer" as one model span would swallow the kept "breast" match
    breast, ovarian = Span(0, 6, LUNG, "dictionary"), Span(11, 25, LUNG, "dictionary")
    both = Span(0, 25, LUNG, "model", 0.99)
    assert widen([breast, ovarian], [breast, ovarian, both],
                 MergeRule(min_widen_score=0.9)) == [breast, ovarian]


def test_offsets_index_the_original_text_through_html_unicode_and_spacing(vocab):
    title = "Naïve β-cells and <i>breast\u00a0cancer</i>"
    abstract = "Caf\u00e9 <b>study</b>:\n\n  patients   with lung \t cancer &amp; more."
    mentions = dict_only(title, abstract)
    assert [(m.field, m.text) for m in mentions] == [
        ("title", "breast\u00a0cancer"), ("abstract", "lung \t cancer")
    ]
    for m in mentions:
        original = title if m.field == "title" else abstract
        assert original[m.start : m.end] == m.text


def test_empty_and_title_only_inputs(vocab):
    assert dict_only("", "") == []
    [m] = dict_only("Lung cancer screening", "")
    assert (m.field, m.start, m.end) == ("title", 0, 11)
    assert extract_batch([], routes=("dictionary",)) == []


def test_bad_input_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown disease routes"):
        extract_diseases(preprocess("t", "a"), routes=("regex",))
    with pytest.raises(TypeError, match="expected Preprocessed"):
        extract_diseases("Lung cancer")  # type: ignore[arg-type]


def test_decode_snaps_to_words_and_opens_on_stray_inside():
    text = "a hepatotoxicity b"
    assert decode(text, [(2, 7), (7, 16)], [1, 2]) == [(2, 16)]
    assert decode(text, [(0, 1), (2, 7), (17, 18)], [0, 2, 0]) == [(2, 16)]


def test_llm_route_keeps_only_grounded_vocabulary_concepts(vocab):
    answer = ('{"diseases": ["lung cancer", "Huntington disease", "the patients", '
              '"diabetes mellitus"]}')
    chat = FakeListChatModel(responses=[answer])
    doc = preprocess("Lung cancer in smokers", "Some patients also had diabetes mellitus.")
    mentions = extract_diseases(doc, routes=("llm",), chat_model=chat)
    assert [(m.field, m.text, m.source) for m in mentions] == [
        ("title", "Lung cancer", "llm"), ("abstract", "diabetes mellitus", "llm")
    ]
    assert all("Huntington" not in m.name for m in mentions)  # invented: not in the text


def test_llm_route_survives_malformed_output(vocab):
    chat = FakeListChatModel(responses=["I think it is cancer."])
    assert extract_diseases(preprocess("Lung cancer", ""), routes=("llm",), chat_model=chat) == []
    assert ground("no disease here", ["fever of unknown origin"], vocab) == []


def test_the_llm_route_runs_offline_on_a_local_folder(tiny_qwen_dir, vocab):
    from tools.chat_model import build_chat_model
    from tools.diseases.llm import llm_spans

    chat = build_chat_model(tiny_qwen_dir, max_new_tokens=8)
    assert llm_spans("Lung cancer in smokers.", vocab, chat) == []  # random weights: no JSON


def test_normalisation_falls_back_to_character_similarity(vocab):
    from tools.diseases.normalise import normalise

    assert normalise(vocab, "Cancers of the lung") == LUNG  # word-order key
    assert vocab.concepts[normalise(vocab, "neuroblastomas of childhood")].name == "Neuroblastoma"
    assert normalise(vocab, "and") is None and normalise(vocab, "xyzzy") is None


def test_missing_adapter_skips_the_model_route_loudly(vocab, monkeypatch, tmp_path, caplog):
    import tools.diseases as diseases
    import tools.diseases.model as model

    monkeypatch.setattr(model, "ADAPTER_DIR", tmp_path / "none")
    diseases._warn_no_adapter.cache_clear()
    with caplog.at_level("WARNING"):
        mentions = extract_diseases(preprocess("Lung cancer", ""))  # default: dictionary + model
    assert [m.source for m in mentions] == ["dictionary"]
    assert "model route skipped" in caplog.text
    assert [i.kind for i in diseases.model_info()] == ["disease-dictionary"]


def test_cancers_are_listed_under_their_organ_site(vocab):
    from tools.diseases.vocab import cancer_site

    nsclc = vocab.concepts["MESH:D002289"]
    assert nsclc.readable == "Non Small Cell Lung Carcinoma" and nsclc.site == "Lung Cancer"
    assert vocab.concepts[LUNG].site == "Lung Cancer"
    assert vocab.concepts["MESH:D008545"].site is None  # melanoma: filed by histology only
    assert cancer_site(["C14.280"], {"C14.280": "Heart Cancer"}) is None  # not under C04.588
    mentions = dict_only("Non-small cell lung cancer (NSCLC) and asthma",
                         "Most NSCLC patients smoked; lung cancer screening helps.")
    assert {m.name for m in mentions if m.text == "NSCLC"} == {"Non Small Cell Lung Carcinoma"}
    assert disease_names(mentions) == ["Lung Cancer", "Asthma"]


def test_a_short_form_defined_in_the_plural_is_known_in_the_singular(vocab):
    abstract = ("Options are immune checkpoint inhibitors (CPIs). Patients progressed "
                "after chemotherapy and CPI. Two NSCLCs, i.e. non-small cell lung cancers "
                "(NSCLCs), and one NSCLC relapsed.")
    mentions = dict_only("", abstract)
    assert "CPI" not in {m.text for m in mentions}  # not "Cleft Palate, Isolated, ..."
    assert [m.text for m in mentions].count("NSCLC") == 1


def test_modifiers_the_corpora_annotate_join_the_mention(vocab):
    """Learnt from the train sets against MEDIC names alone (see lexicon._learn_extensions)."""
    assert {"renal", "hereditary", "sporadic"} <= vocab.extend_left
    assert "of" not in vocab.extend_left | vocab.extend_right
    mentions = dict_only("", "Two patients had renal hamartomas and a VHL tumor; "
                             "sporadic breast cancer was rarer.")
    assert [m.text for m in mentions] == ["renal hamartomas", "VHL tumor", "sporadic breast cancer"]


def test_composite_mentions_split_into_one_concept_per_disease(vocab):
    from tools.diseases.composite import composite_concepts, split

    assert split("breast and ovarian cancer") == ["breast cancer", "ovarian cancer"]
    assert split("breast/ovarian cancers") == ["breast cancers", "ovarian cancers"]
    assert split("brain, breast, and prostate cancer") == [
        "brain cancer", "breast cancer", "prostate cancer"]
    assert split("colon or rectal cancer") == ["colon cancer", "rectal cancer"]
    assert split("breast cancer") == [] and split("X-linked immunodeficiency disease") == []
    assert composite_concepts(vocab, "breast and ovarian cancer") == ["MESH:D001943",
                                                                      "MESH:D010051"]
    assert composite_concepts(vocab, "classical and Duarte galactosemia") == []  # unknown part
    title = "Risk of breast and ovarian cancer in carriers"
    abstract = "Carriers develop  breast/ovarian cancers early."
    mentions = dict_only(title, abstract)
    composite = [m for m in mentions if m.parts]
    assert len(composite) == 2
    for m in composite:
        original = title if m.field == "title" else abstract
        assert original[m.start:m.end] == m.text  # offsets index the original text
        assert m.parts == ["MESH:D001943", "MESH:D010051"] and m.concept_id == "MESH:D010051"
    assert disease_names(mentions)[:2] == ["Breast Cancer", "Ovarian Cancer"]


def test_an_abbreviation_takes_the_vocabulary_name_of_its_whole_long_form(vocab):
    from tools.diseases.spans import propagate_abbreviations

    text = "Patients with non-small cell lung cancer (NSCLC) were treated. NSCLC recurred."
    inner = text.index("lung cancer")
    # a route found only the shorter name at the end of the long form
    spans = [Span(inner, inner + len("lung cancer"), LUNG, "model")]
    out = propagate_abbreviations(spans, text, vocab)
    nsclc = vocab.lookup("non-small cell lung cancer")
    short = [s for s in out if text[s.start:s.end] == "NSCLC"]
    assert nsclc not in (None, LUNG) and len(short) == 2
    assert {s.concept_id for s in short} == {nsclc}
