"""The labelled corpus and its fixed split, read the same way by training and evaluation."""

from __future__ import annotations

from pathlib import Path

from core.io import InputRow, read_folder
from core.labels import Example
from core.settings import Settings, load_settings
from tools.preprocess import View, model_text, preprocess

SPLIT_DIR = Path(__file__).resolve().parent / "splits"



def load_corpus(settings: Settings | None = None) -> list[InputRow]:
    settings = settings or load_settings()
    return read_folder(settings.data_path() / "abstracts")


def read_split(name: str) -> list[str]:
    path = SPLIT_DIR / f"{name}.txt"
    if not path.exists():
        raise FileNotFoundError(f"{path} missing; run `python -m finetune.split`")
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def to_example(row: InputRow, view: View = "title_and_abstract") -> Example:
    doc = preprocess(row.title, row.abstract)
    return Example(row.abstract_id, model_text(doc, view), int(row.label == "Cancer"))


def load_split(name: str, settings: Settings | None = None) -> list[Example]:
    """Examples of one split (train/val/test), in the split file's order."""
    by_id = {row.abstract_id: row for row in load_corpus(settings)}
    return [to_example(by_id[i]) for i in read_split(name)]
