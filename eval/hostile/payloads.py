"""Hostile text every surface is fed, and the three ways a row reaches the CLI as a file."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from core.contract import MAX_ABSTRACT_CHARS, MAX_TITLE_CHARS
from eval.hostile.harness import Row

M = "Melanoma of the skin"  # the keyword rule calls it Cancer, the dictionary finds it

# name -> (title, abstract, status the record must have)
PAYLOADS: dict[str, tuple[str, str, str]] = {
    "u2028-line-separator": (f"{M}\u2028study", "Melanoma\u2028cells and nivolumab.", "ok"),
    "u2029-paragraph-separator": (f"{M}\u2029review", "Melanoma.\u2029Second paragraph.", "ok"),
    "nel": (f"{M}\x85study", "Melanoma\x85cells treated.", "ok"),
    "form-feed": (f"{M}\x0cstudy", "Melanoma\x0ccells treated.", "ok"),
    "vertical-tab": (M, "Melanoma\x0bcells treated.", "ok"),
    "file-group-record-separators": (M, "Melanoma\x1ccells\x1dand\x1enivolumab.", "ok"),
    "nul": (f"{M}\x00", "Melanoma\x00cells treated.", "ok"),
    "lone-cr": (M, "Melanoma\rcells treated.", "ok"),
    "crlf-in-field": (M, "Melanoma\r\ncells treated.", "ok"),
    "rtl-and-override": (f"\u0633\u0631\u0637\u0627\u0646 {M}",
                         "\u202eMelanoma\u202c \u05e1\u05e8\u05d8\u05df.", "ok"),
    "combining-marks-nfc": ("Me\u0301lanoma of the skin", "Cafe\u0301 staff with melanoma.", "ok"),
    "hangul-jamo-nfc": (f"\u1100\u1161\u11a8 {M}", "\u1100\u1161 melanoma cells.", "ok"),
    "astral-emoji": (f"{M} \U0001f9ec", "Melanoma \U0001d510 cells \U0001f600.", "ok"),
    "bom-zwj-inside": (f"\ufeff{M}", "Mela\u200dnoma cells and melanoma.", "ok"),
    "csv-quotes-commas-newlines": (f'"{M}", a, b', 'Melanoma, "quoted",\nnewline\n\nend.', "ok"),
    "markup": (f"<i>{M}</i>", "<b>Melanoma</b> &amp; nivolumab [1].", "ok"),
    "title-only": (M, "", "no_abstract"),
    "empty-row": ("", "", "error: empty row"),
    "separators-only": (" \u2028 ", "\x0c\x85", "error: empty row"),
    "abstract-over-cap": (M, "melanoma " * (MAX_ABSTRACT_CHARS // 9 + 1),
                          "error: abstract too long"),
    "title-over-cap": ("t" * (MAX_TITLE_CHARS + 1), "Melanoma.", "error: title too long"),
}


def hostile_row(name: str, row_id: str = "hostile-1") -> Row:
    title, abstract, status = PAYLOADS[name]
    return Row(row_id, title, abstract, status, "Cancer" if status == "ok" else None)


def _cell(value: object) -> object:
    return "" if value is None else value


def write_pandas(folder: Path, rows: list[Row]) -> Path:
    import pandas as pd

    path = folder / "in.csv"
    frame = pd.DataFrame([{"pmid": _cell(r.id), "title": _cell(r.title),
                           "abstract": _cell(r.abstract)} for r in rows])
    frame.to_csv(path, index=False)
    return path


def write_csv_module(folder: Path, rows: list[Row]) -> Path:
    path = folder / "in.csv"
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["pmid", "title", "abstract"])
        writer.writerows([_cell(r.id), _cell(r.title), _cell(r.abstract)] for r in rows)
    return path


def write_jsonl(folder: Path, rows: list[Row]) -> Path:
    """Raw UTF-8 (a U+2028 stays a raw character inside the line); \\u escapes only where a
    lone surrogate cannot be written otherwise."""
    path = folder / "in.jsonl"
    lines = []
    for r in rows:
        record = {"title": r.title, "abstract": r.abstract}
        if r.id is not None:
            record = {"id": r.id, **record}
        text = json.dumps(record, ensure_ascii=False)
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            text = json.dumps(record)
        lines.append(text + "\n")
    path.write_text("".join(lines), encoding="utf-8")
    return path


WRITERS = {"pandas-csv": write_pandas, "csv-module": write_csv_module, "jsonl": write_jsonl}


def read_output(path: Path) -> list[dict]:
    """Records of a JSONL output; no raw character any line splitter breaks on may appear."""
    text = path.read_bytes().decode("utf-8")
    records = [json.loads(line) for line in text.split("\n") if line.strip()]
    if len(text.splitlines()) != len(records):
        raise AssertionError(f"{path}: {len(text.splitlines())} lines by splitlines, "
                             f"{len(records)} records")
    return records
