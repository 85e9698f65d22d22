"""Input readers: every accepted format and every bad input the issue lists."""

from __future__ import annotations

import json

import pytest

from core.io import MAX_ABSTRACT_CHARS, InputError, parse_abstract_file, prepare_resume, read_input


def test_csv_id_columns_are_case_insensitive_and_extra_columns_ignored(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text("PMID,Title,Abstract,journal\n1,T one,A one,J\n2,T two,A two,J\n")
    rows = read_input(path)
    assert [(r.abstract_id, r.title, r.abstract) for r in rows] == [
        ("1", "T one", "A one"), ("2", "T two", "A two")]


@pytest.mark.parametrize("id_col", ["pmid", "abstract_id", "id"])
def test_csv_accepts_each_id_column(tmp_path, id_col):
    path = tmp_path / "a.csv"
    path.write_text(f"{id_col},title,abstract\n42,t,a\n")
    assert read_input(path)[0].abstract_id == "42"


def test_jsonl(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_text(json.dumps({"id": "7", "title": "t", "abstract": "a"}) + "\n\n")
    assert read_input(path)[0].abstract_id == "7"


def test_folder_of_dataset_files_takes_abstract_to_end_of_file(tmp_path):
    (tmp_path / "Cancer").mkdir()
    (tmp_path / "Cancer" / "99.txt").write_text(
        "<ID:99>\nTitle: A title\nAbstract: First line.\nSecond line.\nThird.")
    [row] = read_input(tmp_path)
    assert (row.abstract_id, row.title, row.label) == ("99", "A title", "Cancer")
    assert row.abstract == "First line.\nSecond line.\nThird."


def test_parse_without_abstract_line():
    item = parse_abstract_file("<ID:5>\nTitle: Only a title", "5")
    assert (item["id"], item["title"], item["abstract"]) == ("5", "Only a title", "")


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("missing.csv", None, "input not found"),
        ("noabs.csv", "pmid,title,body\n1,t,b\n", "no abstract column"),
        ("bad.jsonl", "{not json\n", "not valid JSON"),
        ("a.pdf", "x", "unsupported input type"),
    ],
)
def test_whole_file_errors_are_one_line(tmp_path, name, content, message):
    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    with pytest.raises(InputError, match=message) as info:
        read_input(path)
    assert "\n" not in str(info.value)


def test_undecodable_bytes(tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes("pmid,title,abstract\n1,caf\xe9,x\n".encode("latin-1"))
    with pytest.raises(InputError, match="not valid UTF-8"):
        read_input(path)


def test_row_level_problems_become_row_errors(tmp_path):
    path = tmp_path / "rows.csv"
    huge = "x" * (MAX_ABSTRACT_CHARS + 1)
    path.write_text(f"pmid,title,abstract\n1,t,a\n1,t,dup\n2,,\n3,t,{huge}\n4,title only,\n")
    rows = {r.abstract_id: r for r in read_input(path) if r.error}
    errors = [r.error for r in read_input(path)]
    assert errors[0] is None
    assert "duplicate abstract_id" in errors[1]
    assert "empty row" in errors[2]
    assert "too long" in errors[3]
    assert errors[4] is None  # title only: processed, status no_abstract
    assert set(rows) == {"1", "2", "3"}


def test_resume_drops_a_cut_last_line_and_lone_error_records(tmp_path):
    out = tmp_path / "o.jsonl"
    lines = [{"abstract_id": "a", "status": "ok"}, {"abstract_id": "b", "status": "error: boom"},
             {"abstract_id": "a", "status": "error: duplicate abstract_id 'a'"}]
    out.write_text("".join(json.dumps(r) + "\n" for r in lines) + '{"abstract_id": "c", "sta')
    assert prepare_resume(out) == ({"a"}, 2)
    kept = [json.loads(line) for line in out.read_text().splitlines()]
    assert kept == [lines[0], lines[2]]  # b is retried; a's duplicate-row error stays
