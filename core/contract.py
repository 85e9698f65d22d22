"""The input contract: one set of rules every entry applies (CLI reader, API, stream producer
and stream worker), so a record never depends on which door an abstract came in by.

Text (title, abstract):
- a lone surrogate (invalid Unicode, e.g. a JSON `\\ud800` escape) becomes U+FFFD;
- line/paragraph breaks that Python's `str.splitlines` splits on but CSV writers leave
  unquoted (U+2028, U+2029, NEL, VT, FF, U+001C-U+001E) become "\\n" and NUL becomes " ",
  so a field can never turn into two rows downstream;
- NFC;
- a non-string is a row error; so is text over its size cap (after normalising).
Every change adds a note to the row. Only NFC can change a text's length; whenever the
contract changed a text at all, the record carries the text it processed (`text`) and the
offsets of its mentions and citations index that text; otherwise they index the input as given.

IDs are opaque: only surrounding whitespace is stripped and lone surrogates are replaced (with
a note); one with a control character or line break, or over the cap, is a row error. A row
without an ID gets `gen-<sha256(title, abstract)[:12]>`, the same on every producer for the
same text, disambiguated (`-2`, `-3`) against every other ID of its run, job or batch.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Iterable
from typing import Any

MAX_TITLE_CHARS = 5_000
MAX_ABSTRACT_CHARS = 100_000  # far above any real abstract (max here ~6k chars)
MAX_ID_CHARS = 200
GENERATED_PREFIX = "gen-"

_SURROGATE = re.compile("[\ud800-\udfff]")
# every character str.splitlines breaks on except \n and \r, which CSV writers quote
_BREAKS = {ord(c): "\n" for c in "\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"} | {0: " "}
_BREAK_NAMES = {"\x0b": "VT", "\x0c": "form feed", "\x1c": "U+001C", "\x1d": "U+001D",
                "\x1e": "U+001E", "\x85": "NEL", "\u2028": "U+2028", "\u2029": "U+2029",
                "\x00": "NUL"}
_BAD_ID_CHAR = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_JSON_BREAKS = {"\u2028": "\\u2028", "\u2029": "\\u2029", "\x85": "\\u0085"}


def replace_surrogates(text: str) -> tuple[str, int]:
    """(text with each lone surrogate replaced by U+FFFD, how many there were)."""
    fixed, n = _SURROGATE.subn("\ufffd", text)
    return fixed, n


def clean_text(value: Any, name: str) -> tuple[str, list[str], str | None]:
    """(normalised text, notes, row error) for one title or abstract."""
    if value is None:
        return "", [], None
    if not isinstance(value, str):
        return "", [], f"{name} is not text (got {type(value).__name__})"
    notes = []
    text, n = replace_surrogates(value)
    if n:
        notes.append(f"{name}: {n} lone surrogate(s) replaced by U+FFFD")
    found = sorted({_BREAK_NAMES[c] for c in text if ord(c) in _BREAKS})
    if found:
        text = text.translate(_BREAKS)
        notes.append(f"{name}: {', '.join(found)} replaced (line breaks become \\n, NUL a space)")
    nfc = unicodedata.normalize("NFC", text)
    if nfc != text:
        notes.append(f"{name}: NFC-normalised ({len(text)} -> {len(nfc)} chars)")
    text = nfc
    cap = MAX_TITLE_CHARS if name == "title" else MAX_ABSTRACT_CHARS
    error = f"{name} too long ({len(text):,} chars > {cap:,})" if len(text) > cap else None
    return text, notes, error


def clean_id(value: Any) -> tuple[str | None, list[str], str | None]:
    """(ID or None when absent, notes, row error). Integers are accepted as IDs (JSON PMIDs)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None, [], None
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None, [], f"abstract_id is not text (got {type(value).__name__})"
    text, n = replace_surrogates(str(value).strip())
    notes = [f"abstract_id: {n} lone surrogate(s) replaced by U+FFFD"] if n else []
    if len(text) > MAX_ID_CHARS:
        return text, notes, f"abstract_id too long ({len(text):,} chars > {MAX_ID_CHARS})"
    if _BAD_ID_CHAR.search(text):
        return text, notes, "abstract_id contains a control character or line break"
    return text, notes, None


def generated_id(title: str, abstract: str) -> str:
    """The same text gets the same ID on every producer: no namespace to coordinate."""
    digest = hashlib.sha256(json.dumps([title, abstract]).encode("utf-8")).hexdigest()
    return f"{GENERATED_PREFIX}{digest[:12]}"


def unique_generated_id(title: str, abstract: str, taken: set[str]) -> str:
    """A generated ID not in `taken` (which it joins)."""
    base = candidate = generated_id(title, abstract)
    n = 1
    while candidate in taken:
        n += 1
        candidate = f"{base}-{n}"
    taken.add(candidate)
    return candidate


def given_ids(ids: Iterable[str | None]) -> set[str]:
    return {i for i in ids if i is not None}


def dumps_record(record: dict[str, Any]) -> str:
    """One JSONL line: no raw character any line splitter breaks on, always encodable."""
    line = json.dumps(record, ensure_ascii=False)
    for char, escaped in _JSON_BREAKS.items():
        line = line.replace(char, escaped)
    return _SURROGATE.sub("\ufffd", line)
