"""CTD MEDIC disease vocabulary: concepts, readable names, cancer flags and a lookup index.

Text and vocabulary terms go through the same `tokens()` normaliser (case, accents,
British spellings, plurals, possessives, hyphens and spacing), so a lookup key is the
space-joined normalised token sequence. A second "bag" key (sorted tokens without
function words) catches word-order variants such as "cancer of the lung".

Building it from MEDIC and the train corpora, and caching it, is tools/diseases/lexicon.py,
which also uses the dictionary matcher (so the matcher can import these types).
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field

_TOKEN = re.compile(r"[A-Za-z0-9]+")
_BRITISH = [
    ("tumour", "tumor"), ("oedema", "edema"), ("oesophag", "esophag"), ("haem", "hem"),
    ("aemia", "emia"), ("paed", "ped"), ("ischaem", "ischem"), ("leukaem", "leukem"),
    ("diarrhoea", "diarrhea"), ("foetal", "fetal"), ("coeliac", "celiac"),
]
FUNCTION_WORDS = frozenset({"of", "the", "a", "an", "in", "to", "with", "due", "by", "for"})


def norm_token(token: str) -> str:
    """Lower-case, strip accents, map British spellings and strip a plural ending."""
    t = unicodedata.normalize("NFKD", token).encode("ascii", "ignore").decode().lower()
    for uk, us in _BRITISH:
        if uk in t:
            t = t.replace(uk, us)
    if len(t) > 4 and t.endswith("ies"):
        return t[:-3] + "y"
    if len(t) > 3 and t.endswith("s") and not t.endswith(("ss", "us", "is", "sis")):
        return t[:-1]
    return t


def tokens(text: str) -> list[tuple[str, int, int]]:
    """Normalised tokens with their [start, end) in `text`; possessive "s" tokens dropped."""
    out = []
    for m in _TOKEN.finditer(text):
        if m.group(0) in ("s", "S") and m.start() > 0 and text[m.start() - 1] in "'’":
            continue
        out.append((norm_token(m.group(0)), m.start(), m.end()))
    return out


def key_of(text: str) -> str:
    return " ".join(t for t, _, _ in tokens(text))


def bag_key(words: list[str]) -> str:
    """Word-order-free key: sorted tokens without function words ("" when under 2 remain)."""
    content = sorted(w for w in words if w not in FUNCTION_WORDS)
    return " ".join(content) if len(content) >= 2 else ""


@dataclass
class Concept:
    concept_id: str
    name: str  # the MEDIC preferred name
    readable: str  # the name we show (see readable_name)
    is_cancer: bool
    synonyms: list[str] = field(default_factory=list)
    site: str | None = None  # organ-level cancer a neoplasm files under (see cancer_site)


def is_cancer_tree(tree_numbers: list[str]) -> bool:
    """Neoplasm = some tree number under C04, Cysts (C04.182) excluded.

    Supplementary concepts carry their heading's number plus "/<own id>"
    ("C04.182/C536528", a Van der Woude modifier): the heading decides.
    """
    headings = (t.split("/")[0] for t in tree_numbers)
    return any(
        (t == "C04" or t.startswith("C04.")) and not (t == "C04.182" or t.startswith("C04.182."))
        for t in headings
    )


def readable_name(name: str, synonyms: list[str]) -> str:
    """The everyday form of a MeSH heading, taken from the concept's own synonyms.

    Rule, first that applies: (1) a "... Neoplasm(s)" heading shows the synonym that
    spells it with "Cancer" instead ("Lung Neoplasms" -> "Lung Cancer"); (2) an inverted
    heading ("Carcinoma, Non-Small-Cell Lung") shows the synonym with the same words
    without the comma ("Non-Small-Cell Lung Carcinoma"); (3) otherwise the MEDIC name.
    """
    lower = [s.lower() for s in synonyms]
    if "neoplasm" in name.lower():
        wanted = re.sub(r"neoplasms?", "cancer", name.lower())
        if wanted in lower:
            return synonyms[lower.index(wanted)]
    if "," in name:
        words = sorted(re.findall(r"[a-z0-9]+", name.lower()))
        for syn in synonyms:
            if "," not in syn and sorted(re.findall(r"[a-z0-9]+", syn.lower())) == words:
                return syn
    return name


def cancer_site(trees: list[str], readable_at: dict[str, str]) -> str | None:
    """The organ-level cancer name of a neoplasm ("NSCLC" -> "Lung Cancer").

    Rule: follow the concept's tree numbers under C04.588 (Neoplasms by Site), from the
    concept itself upwards, and take the first heading whose readable name is an
    "... Cancer" ("Carcinoma, Non-Small-Cell Lung" -> "Bronchial Neoplasms" (no cancer
    synonym) -> "Lung Neoplasms" = "Lung Cancer"). Neoplasms filed only by histology
    (melanoma, glioblastoma, leukaemias) have no site.
    """
    for tree in trees:
        if not tree.startswith("C04.588."):
            continue
        parts = tree.split(".")
        for depth in range(len(parts), 2, -1):
            name = readable_at.get(".".join(parts[:depth]))
            if name and name.endswith(" Cancer"):
                return name
    return None


@dataclass
class Vocabulary:
    concepts: dict[str, Concept]
    alt_ids: dict[str, str]  # alternative id -> primary concept id
    exact: dict[str, str]  # normalised key -> concept id
    bag: dict[str, str]  # bag key -> concept id
    prefixes: set[str]  # every token-prefix of an exact key (for early stopping)
    case_sensitive: set[str]  # keys that only match when the text token is upper-case
    stopped: set[str]  # ambiguous keys never matched by the dictionary route
    max_len: int
    # words the train annotators take into a mention next to a name ("renal" hamartomas)
    extend_left: set[str] = field(default_factory=set)
    extend_right: set[str] = field(default_factory=set)

    def canonical(self, concept_id: str) -> str:
        return canonical_id(concept_id, self.concepts, self.alt_ids)

    def lookup(self, text: str) -> str | None:
        """Concept id for a mention string: exact normalised key, then the word-order bag key."""
        words = [t for t, _, _ in tokens(text)]
        key = " ".join(words)
        if key in self.exact:
            return self.exact[key]
        return self.bag.get(bag_key(words))


def canonical_id(concept_id: str, concepts: dict, alt_ids: dict[str, str]) -> str:
    """A gold or alternative id mapped to the MEDIC primary id ("D001943" -> "MESH:D001943")."""
    cid = concept_id.strip()
    if not cid.startswith(("MESH:", "OMIM:")):
        cid = f"MESH:{cid}"
    return cid if cid in concepts else alt_ids.get(cid, cid)


def index(concepts: dict[str, Concept], alt_ids: dict[str, str],
           candidates: dict[str, Counter[str]], upper_only: dict[str, bool]) -> Vocabulary:
    """The lookup structures over the evidence gathered so far (best-supported concept per key)."""
    exact = {k: c.most_common(1)[0][0] for k, c in candidates.items()}
    bag: dict[str, str] = {}
    for k, cid in exact.items():
        b = bag_key(k.split())
        if b and b not in exact:
            bag.setdefault(b, cid)
    prefixes = {" ".join(k.split()[:i]) for k in exact for i in range(1, len(k.split()) + 1)}
    return Vocabulary(
        concepts=concepts, alt_ids=alt_ids, exact=exact, bag=bag, prefixes=prefixes,
        case_sensitive={k for k, up in upper_only.items() if up}, stopped=set(),
        max_len=max(len(k.split()) for k in exact),
    )
