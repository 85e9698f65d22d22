"""The two classes and a labelled example, shared by training, scoring and evaluation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Label = Literal["Cancer", "Non-Cancer"]
LABELS: tuple[Label, Label] = ("Cancer", "Non-Cancer")
CANCER: Label = "Cancer"


@dataclass
class Example:
    """One classifier example: the model text and its class, 1 = Cancer, 0 = Non-Cancer."""

    abstract_id: str  # kept for bookkeeping only: never part of the model text
    text: str
    label: int
