"""Property tests of the input contract (core/contract.py, core/io.py): for any rows of
arbitrary Unicode (line/paragraph separators, NEL, lone surrogates, NUL, right-to-left text,
combining marks), written as CSV by pandas and by the csv module and as JSONL, the reader
gives one row per input row with its ID, in order, and the pipeline one record per row whose
offsets index the record's text."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.contract import clean_id, clean_text, dumps_record
from core.io import read_input
from eval.hostile.harness import Row
from eval.hostile.payloads import write_csv_module, write_jsonl, write_pandas

HOSTILE = ("\u2028\u2029\x85\x0c\x0b\x1c\x1d\x1e\x00\r\n\t ,;\"'"
           "\u202e\u200f\u200d\ufeff\u0301\u0327\u1100\u1161\u11a8")
WORDS = ["melanoma", "lung cancer", "asthma", "NSCLC", "[1]", "(Smith et al., 2019)", "café",
         "\u0633\u0631\u0637\u0627\u0646", "\u05e9\u05dc\u05d5\u05dd", "\U0001f9ec", "e\u0301"]
BREAKS = set("\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029\x00")


def texts(surrogates: bool) -> st.SearchStrategy[str]:
    parts = [st.sampled_from(WORDS), st.text(alphabet=HOSTILE, max_size=3), st.text(max_size=4)]
    if surrogates:
        parts.append(st.sampled_from(["\ud800", "\udbff", "\udc00", "\udfff"]))
    return st.lists(st.one_of(*parts), max_size=8).map(" ".join)


def rows(surrogates: bool = False) -> st.SearchStrategy[list[Row]]:
    ident = st.one_of(st.none(), st.text(max_size=10), texts(surrogates).map(lambda t: t[:20]))
    row = st.builds(Row, ident, texts(surrogates), texts(surrogates))
    return st.lists(row, min_size=1, max_size=6, unique_by=lambda r: r.id)


WRITERS = {"pandas": write_pandas, "csv-module": write_csv_module, "jsonl": write_jsonl}
SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


def expected_id(raw: str | None) -> str | None:
    abstract_id, _, _ = clean_id(raw)
    return abstract_id


def check_rows(read: list, given_rows: list[Row]) -> None:
    assert len(read) == len(given_rows)
    for row, raw in zip(read, given_rows, strict=True):
        want = expected_id(raw.id)
        if want is None:
            assert row.abstract_id.startswith("gen-")
        else:
            assert row.abstract_id == want
        if row.error and not row.error.startswith(("duplicate", "empty row", "abstract_id")):
            pytest.fail(f"unexpected row error {row.error!r}")
        for name, value in (("title", row.title), ("abstract", row.abstract)):
            raw_text = getattr(raw, name) or ""
            assert value == clean_text(raw_text, name)[0]
            assert not BREAKS & set(value), "a line break survived"
            assert unicodedata.is_normalized("NFC", value)
            if value != raw_text:
                assert row.changed and row.notes
    fine = [r.abstract_id for r in read if not (r.error or "").startswith("duplicate")]
    assert len(set(fine)) == len(fine), "an ID given twice"


@pytest.mark.parametrize("writer", sorted(WRITERS))
@SETTINGS
@given(data=rows())
def test_every_writer_round_trips_ids_in_order(tmp_path_factory, writer, data):
    folder = tmp_path_factory.mktemp(writer)
    check_rows(read_input(WRITERS[writer](folder, data)), data)


@SETTINGS
@given(data=rows(surrogates=True))
def test_jsonl_with_lone_surrogates(tmp_path_factory, data):
    read = read_input(write_jsonl(tmp_path_factory.mktemp("surrogates"), data))
    check_rows(read, data)
    for row in read:
        dumps_record({"abstract_id": row.abstract_id, "t": row.title}).encode("utf-8")


@pytest.fixture(scope="module")
def keyword_pipeline(tmp_path_factory):
    from eval.hostile.harness import Harness

    harness = Harness(tmp_path_factory.mktemp("pipeline"))
    return harness.pipeline


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=rows(surrogates=True))
def test_records_keep_ids_and_offsets_index_their_text(tmp_path_factory, keyword_pipeline, data):
    read = read_input(write_jsonl(tmp_path_factory.mktemp("records"), data))
    records = keyword_pipeline.process(read, run_id="property")
    assert [r["abstract_id"] for r in records] == [r.abstract_id for r in read]
    for record, row, raw in zip(records, read, data, strict=True):
        if record["status"].startswith("error"):
            continue
        text = record.get("text")
        if text is None:  # the contract changed nothing: offsets index the input as given
            text = {"title": raw.title or "", "abstract": raw.abstract or ""}
            assert text == {"title": row.title, "abstract": row.abstract}
        for span in [*record["disease_mentions"], *record["citations"]["citations"]]:
            covered = text[span["field"]][span["start"] : span["end"]]
            assert covered == span.get("text", span.get("raw"))
        dumps_record(record).encode("utf-8")  # writable whatever came in
