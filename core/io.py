"""Readers for every input format and the resumable JSONL writer.

Bad input never raises a traceback at the user: whole-file problems raise `InputError`
(one line, shown by the CLI), row problems become a per-row `status`.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

MAX_ABSTRACT_CHARS = 100_000  # far above any real abstract (max here ~6k chars)
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
    extra: dict = field(default_factory=dict)


def parse_abstract_file(text: str, fallback_id: str) -> InputRow:
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
    return InputRow(abstract_id=abstract_id, title=title, abstract=abstract)


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(
            f"{path}: not valid UTF-8 (byte {exc.start}); re-save the file as UTF-8"
        ) from exc


def read_folder(path: Path) -> list[InputRow]:
    """A folder of .txt files; a `Cancer/` or `Non-Cancer/` parent gives the gold label."""
    files = sorted(p for p in path.rglob("*.txt") if p.is_file())
    if not files:
        raise InputError(f"{path}: folder holds no .txt abstract files")
    rows = []
    for file in files:
        try:
            row = parse_abstract_file(_read_text(file), file.stem)
        except InputError as exc:
            row = InputRow(abstract_id=file.stem, title="", abstract="", error=str(exc))
        if file.parent.name in ("Cancer", "Non-Cancer"):
            row.label = file.parent.name
        rows.append(row)
    return rows


def _pick(columns: dict[str, str], names: tuple[str, ...]) -> str | None:
    return next((columns[n] for n in names if n in columns), None)


def _rows_from_records(records: list[dict], source: str) -> list[InputRow]:
    if not records:
        raise InputError(f"{source}: no rows")
    columns = {str(k).strip().lower(): k for k in records[0]}
    id_col = _pick(columns, ID_COLUMNS)
    abstract_col = _pick(columns, ("abstract", "text"))
    title_col = _pick(columns, ("title",))
    label_col = _pick(columns, ("label",))
    if abstract_col is None:
        raise InputError(
            f"{source}: no abstract column (found: {', '.join(map(str, columns.values()))}); "
            "expected 'abstract'"
        )
    rows = []
    for n, record in enumerate(records, start=1):
        raw_id = record.get(id_col) if id_col else None
        abstract_id = str(raw_id).strip() if raw_id not in (None, "") else f"row-{n}"
        rows.append(
            InputRow(
                abstract_id=abstract_id,
                title="" if record.get(title_col) is None else str(record.get(title_col)),
                abstract="" if record.get(abstract_col) is None else str(record.get(abstract_col)),
                label=str(record[label_col]) if label_col and record.get(label_col) else None,
            )
        )
    return rows


def read_csv(path: Path) -> list[InputRow]:
    text = _read_text(path)
    csv.field_size_limit(1 << 26)
    try:
        records = list(csv.DictReader(text.splitlines(keepends=True)))
    except csv.Error as exc:
        raise InputError(f"{path}: malformed CSV: {exc}") from exc
    return _rows_from_records(records, str(path))


def read_jsonl(path: Path) -> list[InputRow]:
    records = []
    for n, line in enumerate(_read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"{path}: line {n} is not valid JSON ({exc.msg})") from exc
        if not isinstance(record, dict):
            raise InputError(f"{path}: line {n} is not a JSON object")
        records.append(record)
    return _rows_from_records(records, str(path))


def _validate_rows(rows: list[InputRow]) -> list[InputRow]:
    seen: dict[str, int] = {}
    for n, row in enumerate(rows, start=1):
        if row.error:
            continue
        if row.abstract_id in seen:
            row.error = f"duplicate abstract_id {row.abstract_id!r} (first seen in row {seen[row.abstract_id]})"
        elif len(row.abstract) > MAX_ABSTRACT_CHARS:
            row.error = (
                f"abstract too long ({len(row.abstract):,} chars > {MAX_ABSTRACT_CHARS:,})"
            )
        elif not row.title.strip() and not row.abstract.strip():
            row.error = "empty row: no title and no abstract"
        seen.setdefault(row.abstract_id, n)
    return rows


def read_input(path: str | Path) -> list[InputRow]:
    """Read CSV, JSONL/JSON-lines, a single abstract .txt, or a folder of them."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"input not found: {path}")
    if path.is_dir():
        rows = read_folder(path)
    elif path.suffix.lower() in (".csv", ".tsv"):
        rows = read_csv(path)
    elif path.suffix.lower() in (".jsonl", ".ndjson", ".json"):
        rows = read_jsonl(path)
    elif path.suffix.lower() == ".txt":
        rows = [parse_abstract_file(_read_text(path), path.stem)]
    else:
        raise InputError(f"{path}: unsupported input type {path.suffix!r}; use .csv, .jsonl or a folder")
    return _validate_rows(rows)


def done_ids(output: Path) -> set[str]:
    """IDs already written to an output file, so a rerun resumes where it stopped."""
    if not output.exists():
        return set()
    ids = set()
    with output.open(encoding="utf-8") as fh:
        for line in fh:
            try:
                ids.add(json.loads(line)["abstract_id"])
            except (json.JSONDecodeError, KeyError, TypeError):
                continue  # a line cut by a crash is redone
    return ids


def iter_jsonl(path: Path) -> Iterator[dict]:
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                yield json.loads(line)
