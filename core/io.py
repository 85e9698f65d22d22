"""Readers for every input format and the resumable JSONL writer.

Bad input never raises a traceback at the user: whole-file problems raise `InputError`
(one line, shown by the CLI), row problems become a per-row `status`.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.contract import (
    MAX_ABSTRACT_CHARS,
    clean_id,
    clean_text,
    unique_generated_id,
)

__all__ = ["MAX_ABSTRACT_CHARS", "InputError", "InputRow", "build_rows", "read_input"]

ID_COLUMNS = ("pmid", "abstract_id", "id")
_ID_LINE = re.compile(r"^\s*<ID:\s*([^>]*)>\s*$")


class InputError(ValueError):
    """The input as a whole cannot be read; the message is shown to the user as is."""


@dataclass
class InputRow:
    abstract_id: str
    title: str
    abstract: str
    label: str | None = None  # only for labelled corpora
    error: str | None = None  # a row-level problem: the row is reported, not processed
    extra: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # what the input contract changed
    changed: bool = False  # the contract changed the title or abstract: the record carries them


def build_rows(items: Iterable[Mapping[str, Any]]) -> list[InputRow]:
    """Apply the input contract (core.contract) to raw items, the one way every entry makes
    rows. Item keys: id, title, abstract, and optionally label, error, notes and changed (from
    an earlier step of the contract, e.g. the API's surrogate repair or the stream producer).
    IDs come out unique: generated ones avoid every given one, a repeated given ID is a row error.
    """
    staged = []
    for item in items:
        abstract_id, notes, error = clean_id(item.get("id"))
        title, title_notes, title_error = clean_text(item.get("title"), "title")
        abstract, abstract_notes, abstract_error = clean_text(item.get("abstract"), "abstract")
        prior = list(item.get("notes") or ())
        row = InputRow(
            abstract_id=abstract_id or "", title=title, abstract=abstract,
            label=item.get("label"),
            error=item.get("error") or error or title_error or abstract_error,
            notes=[*prior, *notes, *title_notes, *abstract_notes],
            changed=bool(item.get("changed") or title_notes or abstract_notes),
        )
        staged.append((abstract_id is None, row))
    taken = {row.abstract_id for generate, row in staged if not generate}
    seen: dict[str, int] = {}
    rows = []
    for n, (generate, row) in enumerate(staged, start=1):
        if generate:
            row.abstract_id = unique_generated_id(row.title, row.abstract, taken)
        if row.abstract_id in seen and not row.error:
            row.error = (
                f"duplicate abstract_id {row.abstract_id!r}"
                f" (first seen in row {seen[row.abstract_id]})"
            )
        elif not row.error and not row.title.strip() and not row.abstract.strip():
            row.error = "empty row: no title and no abstract"
        seen.setdefault(row.abstract_id, n)
        rows.append(row)
    return rows


def parse_abstract_file(text: str, fallback_id: str) -> dict[str, Any]:
    """`<ID:...>` / `Title:` / `Abstract:` files; the abstract runs to the end of the file."""
    lines = text.split("\n")
    abstract_id, title, abstract = fallback_id, "", ""
    for i, line in enumerate(lines):
        if m := _ID_LINE.match(line):
            abstract_id = m.group(1).strip() or fallback_id
        elif line.startswith("Title:") and not title:
            title = line[len("Title:") :].strip()
        elif line.startswith("Abstract:"):
            abstract = "\n".join([line[len("Abstract:") :].lstrip(), *lines[i + 1 :]])
            break
    return {"id": abstract_id, "title": title, "abstract": abstract}


def _read_text(path: Path, translate_newlines: bool = True) -> str:
    """UTF-8 text; CSV and JSONL keep their bytes' line ends (no newline translation), so a
    carriage return inside a quoted field survives."""
    try:
        data = path.read_bytes()
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(
            f"{path}: not valid UTF-8 (byte {exc.start}); re-save the file as UTF-8"
        ) from exc
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    return text.replace("\r\n", "\n").replace("\r", "\n") if translate_newlines else text


def _folder_items(path: Path) -> list[dict[str, Any]]:
    """A folder of .txt files; a `Cancer/` or `Non-Cancer/` parent gives the gold label."""
    files = sorted(p for p in path.rglob("*.txt") if p.is_file())
    if not files:
        raise InputError(f"{path}: folder holds no .txt abstract files")
    items = []
    for file in files:
        try:
            item = parse_abstract_file(_read_text(file), file.stem)
        except InputError as exc:
            item = {"id": file.stem, "title": "", "abstract": "", "error": str(exc)}
        if file.parent.name in ("Cancer", "Non-Cancer"):
            item["label"] = file.parent.name
        items.append(item)
    return items


def read_folder(path: Path) -> list[InputRow]:
    """The labelled corpus as stored, for training and evaluation: text untouched (the
    input contract is for what users send; `read_input` applies it to folders too)."""
    return [InputRow(abstract_id=item["id"], title=item["title"], abstract=item["abstract"],
                     label=item.get("label"), error=item.get("error"))
            for item in _folder_items(path)]


def _pick(columns: dict[str, str], names: tuple[str, ...]) -> str | None:
    return next((columns[n] for n in names if n in columns), None)


def _items_from_records(records: list[dict[Any, Any]], source: str) -> list[dict[str, Any]]:
    if not records:
        raise InputError(f"{source}: no rows")
    # every key any record has (a JSONL record may leave out a field the first one has)
    keys = dict.fromkeys(k for record in records for k in record if k is not None)
    columns = {str(k).strip().lower(): k for k in reversed(keys)}  # the first spelling wins
    id_col = _pick(columns, ID_COLUMNS)
    abstract_col = _pick(columns, ("abstract", "text"))
    title_col = _pick(columns, ("title",))
    label_col = _pick(columns, ("label",))
    if abstract_col is None:
        raise InputError(
            f"{source}: no abstract column (found: {', '.join(map(str, columns.values()))}); "
            "expected 'abstract'"
        )
    items = []
    for record in records:
        label = record.get(label_col) if label_col else None
        items.append({
            "id": record.get(id_col) if id_col else None,
            "title": record.get(title_col) if title_col else None,
            "abstract": record.get(abstract_col),
            "label": str(label) if label else None,
        })
    return items


def _unused_char(text: str) -> str:
    """A private-use character the text does not hold, to stand in for another one."""
    return next(c for c in map(chr, range(0xF8FF, 0xE000, -1)) if c not in text)


def read_csv(path: Path) -> list[dict[str, Any]]:
    """The csv module over the text as one stream: only \\n and \\r end a row (pandas and
    `str.splitlines` semantics would split a field on U+2028, NEL or a form feed)."""
    text = _read_text(path, translate_newlines=False)
    csv.field_size_limit(1 << 26)
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    # pandas leaves \r unquoted (even at a field's end, where it reads as CRLF): in a file whose
    # header ends in a bare \n every \r is data; in a CRLF file, every \r not before \n is
    first_end = text.find("\n")
    data_cr = r"\r(?!\n)" if first_end > 0 and text[first_end - 1] == "\r" else r"\r"
    lone_cr = _unused_char(text) if first_end >= 0 and re.search(data_cr, text) else None
    if lone_cr:
        text = re.sub(data_cr, lone_cr, text)
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)
    records, errors = [], []
    try:
        for record in reader:
            width = len(reader.fieldnames or ())
            extra = record.pop(None, None)  # fields beyond the header
            given = width + len(extra) if extra else sum(v is not None for v in record.values())
            errors.append(
                f"malformed row: {given} fields, the header has {width}" if given != width else None
            )
            if lone_cr:
                record = {k: v.replace(lone_cr, "\r") if isinstance(v, str) else v
                          for k, v in record.items()}
            records.append(record)
    except csv.Error as exc:
        raise InputError(f"{path}: malformed CSV: {exc}") from exc
    items = _items_from_records(records, str(path))
    for item, error in zip(items, errors, strict=True):
        item["error"] = error
    return items


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """One JSON object per line; only "\\n" ends a line (a raw U+2028 inside a string is data)."""
    records = []
    for n, line in enumerate(_read_text(path, translate_newlines=False).split("\n"), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"{path}: line {n} is not valid JSON ({exc.msg})") from exc
        if not isinstance(record, dict):
            raise InputError(f"{path}: line {n} is not a JSON object")
        records.append(record)
    return _items_from_records(records, str(path))


def read_input(path: str | Path) -> list[InputRow]:
    """Read CSV, JSONL/JSON-lines, a single abstract .txt, or a folder of them."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"input not found: {path}")
    if path.is_dir():
        items = _folder_items(path)
    elif path.suffix.lower() in (".csv", ".tsv"):
        items = read_csv(path)
    elif path.suffix.lower() in (".jsonl", ".ndjson", ".json"):
        items = read_jsonl(path)
    elif path.suffix.lower() == ".txt":
        items = [parse_abstract_file(_read_text(path), path.stem)]
    else:
        raise InputError(
            f"{path}: unsupported input type {path.suffix!r}; use .csv, .jsonl or a folder")
    return build_rows(items)


def prepare_resume(output: Path) -> tuple[set[str], int]:
    """Make `output` safe to append to and say what is done: (IDs written, records dropped).

    A line cut short by a crash is dropped, and so is an error record whose ID has no other
    record: a resume retries it (an error beside a real record, e.g. a repeated ID, stays).
    The file is rewritten (atomically) only when something is dropped.
    """
    if not output.exists():
        return set(), 0
    kept: list[tuple[str, bool, str]] = []
    dropped = 0
    with output.open(encoding="utf-8", newline="") as fh:
        for line in fh:
            try:
                record = json.loads(line)
                kept.append((record["abstract_id"], record["status"].startswith("error"), line))
            except (json.JSONDecodeError, KeyError, TypeError, AttributeError):
                dropped += 1  # a line cut by a crash is redone
    ok = {abstract_id for abstract_id, failed, _ in kept if not failed}
    lines = [line for abstract_id, failed, line in kept if not failed or abstract_id in ok]
    dropped += len(kept) - len(lines)
    if dropped:
        tmp = output.with_name(output.name + ".tmp")
        with tmp.open("w", encoding="utf-8", newline="") as fh:
            fh.writelines(line if line.endswith("\n") else line + "\n" for line in lines)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, output)
    return ok, dropped


def iter_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                yield json.loads(line)
