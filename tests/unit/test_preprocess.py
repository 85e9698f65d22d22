"""Preprocessing against every quirk listed in ../shared/data/abstracts/PROVENANCE.md.

Real files where the quirk is in the data, synthetic text where it is not (missing
abstracts, other citation styles) so each rule is pinned by a test that can fail.
"""

from __future__ import annotations

import difflib
import math
import re

import pytest

from core.io import read_folder
from tools.preprocess import CITATION_MARKER, model_text, preprocess

PUBLISHER_LINES = {  # Non-Cancer files whose abstract ends with publisher boilerplate
    "25044986": "2014 Wiley Periodicals, Inc.",
    "27311832": "2016 Wiley Periodicals, Inc.",
    "27441947": "2016 John Wiley & Sons, Ltd.",
    "27859271": "2016 Pathological Society of Great Britain and Ireland.",
    "30216543": "2018 The Authors. Movement Disorders published by Wiley",
    "37581253": "This article is protected by copyright. All rights reserved",
}
FUNDING = {
    "27103127", "28291640", "26911863", "30517645", "30955977", "36823302", "30184455", "31103629",
}


@pytest.fixture(scope="module")
def corpus(data_dir) -> dict:
    rows = read_folder(data_dir / "abstracts")
    return {row.abstract_id: row for row in rows}


@pytest.fixture(scope="module")
def docs(corpus) -> dict:
    return {i: preprocess(row.title, row.abstract) for i, row in corpus.items()}


def _assert_spans_index_original(doc) -> None:
    fields = {"title": doc.title.original, "abstract": doc.abstract.original}
    for item in doc.removed:
        assert fields[item.field][item.start : item.end] == item.raw
    for cite in doc.citations:
        assert fields[cite.field][cite.start : cite.end] == cite.raw
    for section in doc.sections:
        head = fields[section.field][section.start : section.body_start].upper()
        assert head.removeprefix("<B>").startswith(section.label.split(" ")[0])


# --- corpus-level facts ------------------------------------------------------------------


def test_corpus_shape_and_encoding(data_dir):
    """1000 UTF-8 files, 500 per class, no BOM, no CR, no trailing newline."""
    for label in ("Cancer", "Non-Cancer"):
        files = sorted((data_dir / "abstracts" / label).glob("*.txt"))
        assert len(files) == 500
        for file in files[:50]:
            raw = file.read_bytes()
            assert not raw.startswith(b"\xef\xbb\xbf") and b"\r" not in raw
            assert not raw.endswith(b"\n")
            raw.decode("utf-8")


def test_every_real_abstract_preprocesses_with_valid_spans(docs):
    assert len(docs) == 1000
    for doc in docs.values():
        _assert_spans_index_original(doc)
        assert len(doc.abstract.offsets) == len(doc.abstract.text)


def test_structured_abstracts_keep_every_line_and_sections(corpus, docs):
    """Sections continue on their own lines after `Abstract:`: all lines survive, joined."""
    multi = [i for i, row in corpus.items() if "\n" in row.abstract]
    assert len(multi) == 85  # 40 Cancer + 45 Non-Cancer
    for i in multi:
        text = docs[i].abstract.text
        assert "\n" not in text
        for line in corpus[i].abstract.split("\n"):
            if not any(r.raw in line for r in docs[i].removed):
                assert line.split()[0] in text


def test_section_labels_are_structure_and_stay_in_text(docs):
    doc = docs["31292799"]
    assert [s.label for s in doc.sections] == ["PURPOSE", "METHODS", "RESULTS", "CONCLUSIONS"]
    methods = doc.sections[1]
    assert doc.abstract.original[methods.start : methods.body_start] == "METHODS:"
    assert doc.sections[0].end == methods.start
    assert doc.sections[-1].end == len(doc.abstract.original)
    assert "METHODS:" in doc.abstract.text
    bold = [s for s in docs["36066851"].sections if s.label == "CLINICAL TRIAL REGISTRATION"]
    assert bold, "a <b>label:</b> is a section too"


def test_gene_names_before_colons_are_not_sections():
    doc = preprocess("t", "Results were clear. BCOR: a gene with 3 exons. These are: x, y.")
    assert doc.sections == []


# --- encoding and whitespace ---------------------------------------------------------------


def test_thin_and_no_break_spaces_become_plain_spaces_with_offsets():
    original = "Tumour\u2009size\u00a0was 5\u2009mm ± 2 (≥ 3 × 10·μ)."
    doc = preprocess("t", original)
    assert doc.abstract.text == "Tumour size was 5 mm ± 2 (≥ 3 × 10·μ)."
    start = doc.abstract.text.index("mm ±")
    mm = original.index("mm")
    assert doc.abstract.to_original(start, start + 4) == (mm, mm + 4)


def test_non_ascii_symbols_in_real_files_are_kept(corpus, docs):
    with_unicode = [i for i, row in corpus.items() if not (row.title + row.abstract).isascii()]
    assert len(with_unicode) == 103
    for i in with_unicode:
        text = model_text(docs[i])
        assert "\u2009" not in text and "\u00a0" not in text
        for ch in "±≥×·α":
            assert text.count(ch) == (corpus[i].title + "\n" + corpus[i].abstract).count(ch)


def test_control_and_zero_width_characters_are_removed_and_recorded():
    doc = preprocess("t", "Onco\u200bgene\x00 and\x1f soft\u00adhyphen\u2028line\x85end.")
    assert doc.abstract.text == "Oncogene and softhyphen line end."
    assert sum(r.kind == "control" for r in doc.removed) == 4


# --- stripped copyright sign and publisher boilerplate -----------------------------------------


@pytest.mark.parametrize("pmid,value", sorted(PUBLISHER_LINES.items()))
def test_publisher_lines_become_copyright_metadata(docs, pmid, value):
    doc = docs[pmid]
    copyright_ = doc.metadata.get("copyright", [])
    assert copyright_ and value in copyright_[0]
    assert value.split(".")[0] not in doc.abstract.text
    assert "Wiley" not in doc.abstract.text and "rights reserved" not in doc.abstract.text


def test_only_the_known_files_have_publisher_lines(docs):
    found = {i for i, d in docs.items() if "copyright" in d.metadata}
    assert found == set(PUBLISHER_LINES)


def test_copyright_with_stripped_sign_leaves_the_science_alone():
    text = "Results matter.   2016 Wiley Periodicals, Inc."
    doc = preprocess("t", text)
    assert doc.abstract.text == "Results matter."
    assert doc.metadata["copyright"] == ["2016 Wiley Periodicals, Inc."]
    plain = preprocess("t", "In 2016 we enrolled 40 patients at the American College.")
    assert "copyright" not in plain.metadata  # a year in prose is not a copyright line


def test_journal_citation_line_is_metadata(docs):
    doc = docs["29059455"]
    assert doc.metadata["journal"] == ["Hepatology 2017"]
    assert not doc.abstract.text.endswith(")")


@pytest.mark.parametrize("pmid", sorted(FUNDING))
def test_funding_statements_are_metadata(docs, pmid):
    doc = docs[pmid]
    assert doc.metadata.get("funding")
    assert not re.search(r"FUND(?:ING)?:|Funded by", doc.abstract.text)


def test_only_the_known_files_have_funding_statements(docs):
    assert {i for i, d in docs.items() if "funding" in d.metadata} == FUNDING


def test_funding_removes_a_shortcut_word_from_a_non_cancer_abstract(docs):
    """'US National Cancer Institute' funded a Non-Cancer study: not evidence of cancer."""
    assert "National Cancer Institute" not in model_text(docs["28291640"])
    assert docs["28291640"].metadata["funding"] == ["US National Cancer Institute"]


# --- markup ---------------------------------------------------------------------------------


def test_html_tags_are_removed_in_all_real_files(corpus, docs):
    tagged = [i for i, r in corpus.items() if re.search(r"</?[a-z]+[^>]*>", r.abstract + r.title)]
    assert len(tagged) == 69  # 33 Cancer + 36 Non-Cancer
    for i in tagged:
        assert not re.search(r"</?[a-z]+>", model_text(docs[i]))


def test_markup_keeps_the_inner_text_and_offsets():
    original = "BRAF<sup>V600E</sup> and 10<sup>-8</sup> in <i>KRAS</i>."
    doc = preprocess("t", original)
    assert doc.abstract.text == "BRAFV600E and 10-8 in KRAS."
    i = doc.abstract.text.index("KRAS")
    kras = original.index("KRAS")
    assert doc.abstract.to_original(i, i + 4) == (kras, kras + 4)
    assert not doc.citations  # exponents and variants are not references


def test_mathml_keeps_tokens_and_drops_the_latex_annotation(docs):
    text = docs["36695213"].abstract.text
    assert "Synthetic susceptibility and R2* maps" in text
    assert "$$" not in text and "http" not in text


# --- registrations, URLs, DOIs, notices -------------------------------------------------------


def test_trial_registrations(corpus, docs):
    """24 registrations in 22 files; 3 more files name ClinicalTrials.gov as a searched database."""
    with_trials = {i for i, d in docs.items() if "trial_registration" in d.metadata}
    assert len(with_trials) == 22
    assert sum(len(docs[i].metadata["trial_registration"]) for i in with_trials) == 24
    searched = {i for i, r in corpus.items() if "clinicaltrials.gov" in r.abstract.lower()}
    assert searched - with_trials == {"30887763", "36621911", "36841040"}
    for i in searched - with_trials:
        assert "clinicaltrials.gov" in docs[i].abstract.text.lower()
    for i in with_trials:
        assert not re.search(r"NCT\s?\d{8}", docs[i].abstract.text)
    assert docs["24963042"].metadata["trial_registration"] == ["NCT00572897"]
    assert "clinicaltrials.gov" not in docs["24963042"].abstract.text.lower()
    assert docs["29856837"].metadata["trial_registration"] == ["CRD42017068661"]


def test_urls_in_8_files_leave_the_model_text(corpus, docs):
    with_urls = [i for i, row in corpus.items() if re.search(r"https?://|www\.", row.abstract)]
    assert len(with_urls) == 8
    for i in with_urls:
        assert not re.search(r"https?://|www\.", model_text(docs[i]))
    urls = [c.normalised for c in docs["37148359"].citations if c.kind == "url"]
    assert urls == ["https://t2d.hugeamp.org/downloads.html", "https://www.ebi.ac.uk/gwas/",
                    "https://www.pgscatalog.org"]
    assert [c.raw for c in docs["36930678"].citations] == ["http://hkumath.hku.hk/~wkc/PCB(data+code).zip"]
    assert [c.raw for c in docs["24694135"].citations] == ["www.dir-lab.com"]  # glued "atwww."


def test_corrigendum_is_a_notice_with_its_doi(docs):
    doc = docs["37404832"]
    assert doc.status == "notice" and "notice" in (doc.reason or "")
    assert doc.metadata["notice"] == ["This corrects the article DOI: 10.3389/fimmu.2023.1178582"]
    assert model_text(doc) == doc.title.text  # classified from the title alone


def test_doi_pmid_pmcid_references():
    text = "As shown (doi:10.1000/xyz.123), PMID: 12345678 and PMC7654321 agree."
    doc = preprocess("t", text)
    assert [(c.kind, c.normalised) for c in doc.citations] == [
        ("doi", "doi:10.1000/xyz.123"), ("pmid", "PMID:12345678"), ("pmcid", "PMCID:PMC7654321"),
    ]
    assert doc.abstract.text.count(CITATION_MARKER) == 3
    link = preprocess("t", "See https://doi.org/10.1016/j.cell.2020.01.001.")
    assert [(c.kind, c.raw) for c in link.citations] == [("url", "https://doi.org/10.1016/j.cell.2020.01.001")]


# --- citations ------------------------------------------------------------------------------


def test_the_four_et_al_references(docs):
    su = docs["31138587"].citations
    assert [(c.raw, c.normalised) for c in su] == [("Su et al., p. 5732", "Su et al.")]
    sakai = docs["28378438"].citations[0]
    assert sakai.normalised == "Sakai et al." and "by [ref]. We" in docs["28378438"].abstract.text
    assert any(c.normalised == "Choudhary et al." for c in docs["31351510"].citations)
    grouped = [c.normalised for c in docs["31292799"].citations]
    assert grouped[:3] == ["Paluch-Shimon et al. 2016", "Llort et al. 2015", "Easton et al. 2015"]
    assert len(grouped) == 9
    assert "Op. Cit." not in docs["31292799"].abstract.text


def test_author_year_styles():
    text = (
        "A was shown (Smith 2019; Lee and Park 2020a). Smith and Jones (2020) disagreed, "
        "whereas Brown et al., 2018 and Garcia et al. (2021) did not."
    )
    doc = preprocess("t", text)
    assert [c.normalised for c in doc.citations] == [
        "Smith 2019", "Lee and Park 2020a", "Smith and Jones 2020", "Brown et al. 2018",
        "Garcia et al. 2021",
    ]
    assert doc.abstract.text == (
        "A was shown [ref]. [ref] disagreed, whereas [ref] and [ref] did not."
    )


def test_numeric_references():
    doc = preprocess("t", "Known [1]. Also [1, 2] and [3–5]; blebs<sup>4-11</sup>. Seen¹²⁻¹⁴.")
    assert [c.normalised for c in doc.citations] == ["[1]", "[1,2]", "[3-5]", "[4-11]", "[12-14]"]
    assert doc.abstract.text == "Known [ref]. Also [ref] and [ref]; blebs [ref]. Seen [ref]."


def test_parenthesised_numbers_after_words_are_references(docs):
    cites = [c for c in docs["31351510"].citations if c.kind == "numeric"]
    assert [c.normalised for c in cites][:4] == ["[1]", "[2]", "[2]", "[1,2]"]
    assert "(1)" not in docs["31351510"].abstract.text


@pytest.mark.parametrize(
    "text",
    [
        "median age 63 years [IQR 57-69] with",
        "median [interquartile range], 53 [50-59] versus 51 [41-56] years",
        "odds ratio 2.1, 95% CI [1.2-3.4].",
        "Baseline FVC was 59% ([52-72]) here.",
        "median time was 8 days (3-14).",
        "survival of 53 months (24-70).",
        "(1) survey what experts do, (2) review",
        "dose of 85 mg/m<sup>2</sup>, R<sup>2</sup> = 0.9, [<sup>18</sup>F]FDG, Ca<sup>2+</sup>.",
        "a 152.0 mL/m² volume.",
    ],
)
def test_statistics_are_not_citations(text):
    doc = preprocess("t", text)
    assert doc.citations == []


@pytest.mark.parametrize("text", ["\n[1]", "(\n(1).", "\u2009[2]", "([3]", ""])
def test_numbers_after_only_whitespace_do_not_crash(text):
    """Regression: a bracket preceded only by whitespace once raised IndexError."""
    assert preprocess("t", text).status in ("ok", "no_abstract")


def test_bracketed_statistics_in_the_corpus_are_not_citations(docs):
    numeric = {i for i, d in docs.items() for c in d.citations if c.kind == "numeric"}
    assert numeric == {"31351510", "36356599", "36859545", "37938781"}
    for i in numeric:
        numeric_raw = [c.raw for c in docs[i].citations if c.kind == "numeric"]
        assert all(raw.startswith(("(", "<sup>")) for raw in numeric_raw)


def test_citation_sentence_is_the_supporting_sentence(docs):
    first = docs["36859545"].citations[0]
    assert first.sentence is not None and first.sentence.startswith("Cell-substrate adhesion")
    assert first.sentence.endswith("[ref].")


# --- missing abstracts ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "abstract,status",
    [
        ("", "no_abstract"),
        (None, "no_abstract"),
        (math.nan, "no_abstract"),
        ("   \n\t\u2009", "no_abstract"),
        ("No abstract available", "no_abstract"),
        ("[No abstract available.]", "no_abstract"),
        ("N/A", "no_abstract"),
        ("nan", "no_abstract"),
        ("<p></p>", "no_abstract"),
        ("[This corrects the article DOI: 10.1/x.].", "notice"),
        ("[Erratum to: A study of X. Nature 2020].", "notice"),
        ("Erratum.", "notice"),
        ("Corrigendum to 'Title of the paper' [J Clin Oncol 38 (2020) 1-10].", "notice"),
        ("Retraction note.", "notice"),
        ("We studied 40 patients. Results were good.", "ok"),
    ],
)
def test_missing_abstract_statuses(abstract, status):
    doc = preprocess("A title.", abstract)
    assert doc.status == status
    assert (doc.reason is None) == (status == "ok")
    if status != "ok":
        assert model_text(doc) == "A title."


def test_very_short_real_abstracts_are_ok(corpus, docs):
    short = [i for i, row in corpus.items() if len(row.abstract.split()) < 40]
    assert len(short) == 4
    assert {docs[i].status for i in short} == {"ok", "notice"}
    assert [i for i in short if docs[i].status == "notice"] == ["37404832"]


def test_non_string_cells_do_not_crash():
    assert preprocess(12345, b"bytes \xff abstract").abstract.text == "bytes \ufffd abstract"
    assert preprocess(None, None).status == "no_abstract"


# --- leakage and shortcuts ----------------------------------------------------------------------


def test_near_duplicates_stay_near_identical(docs):
    """Same paper, two PMIDs ("n-BCA" vs "nBCA"): a split must group them by fuzzy match."""
    a, b = model_text(docs["29070606"]), model_text(docs["29627788"])
    assert a != b
    assert difflib.SequenceMatcher(None, a, b, autojunk=False).ratio() > 0.98


def test_the_pmid_never_reaches_the_model_text(docs):
    for i, doc in docs.items():
        assert i not in model_text(doc)


def test_model_text_is_unchanged_where_nothing_was_removed(corpus, docs):
    """Abstracts without citations or metadata: the text is the original with spaces normalised."""
    for i, doc in docs.items():
        if doc.citations or doc.removed:
            continue
        assert doc.abstract.text == " ".join(corpus[i].abstract.split())
