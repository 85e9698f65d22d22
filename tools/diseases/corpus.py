"""PubTator readers for the NCBI Disease and BC5CDR corpora (disease mentions only)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class GoldMention:
    start: int  # into title + " " + abstract
    end: int
    text: str
    kind: str  # Disease | SpecificDisease | DiseaseClass | Modifier | CompositeMention
    concept: str  # raw id column ("D008661", "OMIM:1234", "D1|D2", "-1")


@dataclass
class GoldDoc:
    pmid: str
    title: str
    abstract: str
    mentions: list[GoldMention] = field(default_factory=list)

    @property
    def text(self) -> str:
        return f"{self.title} {self.abstract}"


_DISEASE_KINDS = {"Disease", "SpecificDisease", "DiseaseClass", "Modifier", "CompositeMention"}


def read_pubtator(path: Path) -> list[GoldDoc]:
    """Documents with their disease mentions; duplicate PMIDs are kept once."""
    docs: dict[str, GoldDoc] = {}
    current: GoldDoc | None = None
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if "|t|" in line[:20]:
            pmid, _, title = line.split("|", 2)
            current = GoldDoc(pmid, title, "")
            if pmid not in docs:
                docs[pmid] = current
        elif "|a|" in line[:20] and current is not None:
            current.abstract = line.split("|", 2)[2]
        elif "\t" in line and current is not None:
            cols = line.split("\t")
            if len(cols) >= 6 and cols[4] in _DISEASE_KINDS:
                start, end = int(cols[1]), int(cols[2])
                current.mentions.append(
                    GoldMention(start, end, current.text[start:end], cols[4], cols[5].strip())
                )
    return list(docs.values())
