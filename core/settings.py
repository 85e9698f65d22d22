"""The one typed place for configuration: YAML files in configs/ loaded into pydantic models.

Precedence (last wins): configs/default.yaml < --config FILE < ONCOGRAPH_* env vars < CLI flags.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

PROJECT_ROOT = Path(__file__).resolve().parents[1]
CONFIG_DIR = PROJECT_ROOT / "configs"
MODELS_DIR = CONFIG_DIR / "models"
TRIALS_DIR = MODELS_DIR / "trials"


class ConfigError(ValueError):
    """A configuration file or value is invalid; the message says which and why."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class LoraSettings(_Strict):
    r: int = 16
    alpha: int = 32
    dropout: float = 0.0
    target_modules: list[str] = Field(default_factory=lambda: ["q_proj", "v_proj"])
    # only the top N transformer layers get LoRA: backward then stops there, which halves
    # the cost of a step on CPU (None = every layer)
    top_layers: int | None = None


class TrainSettings(_Strict):
    epochs: float = 1.0
    batch_size: int = 4
    lr: float = 2e-4
    eval_every: int = 50
    patience: int = 2
    gradient_checkpointing: bool = False
    qlora: bool = True  # 4-bit base + LoRA when CUDA is present (ignored on CPU)
    warmup_ratio: float = 0.06
    seed: int = 13
    max_steps: int | None = None


ModelKind = Literal["causal-lm-label-words", "encoder-lora", "tfidf-logreg", "keyword-rule"]
# the inference engine of a causal-LM classifier: torch (bf16; training and CUDA) or a
# CTranslate2 int8 conversion of the merged model (tools/classifier/ct2_engine.py, CPU)
Backend = Literal["torch", "ctranslate2"]


class ModelConfig(_Strict):
    """One classifier: which weights, which adapter, how to batch and how it was trained."""

    name: str
    kind: ModelKind
    weights: str | None = None  # a tools.weights source (offline, pinned)
    path: str | None = None  # hub ID or local folder; wins over `weights` when set
    adapter: str | None = None  # folder relative to the project root
    max_length: int = 256
    # share of a clipped abstract's token budget taken from its end (0: the head only); the
    # closing sentence often names what the work is for ("... a target for cancer therapy")
    tail_share: float = Field(0.0, ge=0.0, lt=1.0)
    batch_size: int = 8
    # fold the LoRA weights into the base at load (faster scoring) or keep them as a peft
    # layer, which lets the chat tasks run the base with the adapter off (no second model)
    merge_adapter: bool = True
    backend: Backend = "torch"  # inference only: training always runs torch
    ct2_compute_type: Literal["int8", "int8_float32", "float32"] = "int8"
    lora: LoraSettings = Field(default_factory=LoraSettings)
    train: TrainSettings = Field(default_factory=TrainSettings)

    def adapter_path(self) -> Path | None:
        if not self.adapter:
            return None
        path = Path(self.adapter)
        return path if path.is_absolute() else PROJECT_ROOT / path

    def adapter_version(self) -> str | None:
        """The version its training recorded (training.json; meta.json for the classical
        models), which predictions carry and cached predictions are checked against."""
        folder = self.adapter_path()
        for name in ("training.json", "meta.json"):
            if folder is not None and (folder / name).exists():
                version = json.loads((folder / name).read_text()).get("version")
                return None if version is None else str(version)
        return None


class ClassifierSettings(_Strict):
    model: str  # its batch size and clipping live in its own configs/models/<model>.yaml


class PreprocessingSettings(_Strict):
    missing_abstract: Literal["title_only", "skip"]
    title_only_confidence_cap: float = Field(ge=0.5, le=1.0)


# the classifier's input views (tools.preprocess.model_text renders them)
View = Literal["title_and_abstract", "abstract_first", "title_only", "head_and_tail"]


class LadderStep(_Strict):
    view: View = "title_and_abstract"
    prompt: Literal["default", "definition"] = "default"
    model: str | None = None  # None = the configured classifier model


class VerifierSettings(_Strict):
    confidence_threshold: float = Field(ge=0.5, le=1.0)
    max_requeries: int = Field(ge=0, le=10)
    ladder: list[LadderStep]


ROUTE_PRIORITY = ("dictionary", "model", "llm")


@dataclass(frozen=True)
class MergeRule:
    """How the disease routes combine; the thresholds only act when the model route runs.

    It lives here, not beside the span code, so that settings build it without importing the
    vocabulary. Chosen by `python -m eval.disease_rules` (reports/diseases/rules.md).
    """

    priority: tuple[str, ...] = ROUTE_PRIORITY
    min_model_score: float = 0.0  # a model span needs this mean P(disease) to be proposed
    min_dictionary_support: float = 0.0  # a dictionary span needs this much model backing
    min_widen_score: float | None = None  # a model span this sure sets a dictionary span's bounds


class DecisionSettings(_Strict):
    """The fused Cancer decision (agents/decision.py; fitted by `make decision-fit`)."""

    # the Cancer recall the operating point is chosen for on the fit's held-out folds; the
    # threshold on the fused P(Cancer) is never above 0.5 (recall first)
    target_recall: float = Field(gt=0.0, le=1.0)
    path: str  # folder of fitted decisions, one <classifier model>.json

    def folder(self) -> Path:
        path = Path(self.path)
        return path if path.is_absolute() else PROJECT_ROOT / path


class DiseaseSettings(_Strict):
    routes: list[Literal["dictionary", "model", "llm"]]
    llm_model: str
    # what runs the NER encoder: torch, or a CTranslate2 int8 conversion of it
    # (tools/diseases/ct2_ner.py; reports/diseases/engines.md)
    model_backend: Literal["torch", "ctranslate2"]
    # windows the ctranslate2 engine computes at once, each on (torch threads / workers)
    # threads (docs/diseases.md; reports/diseases/speed.md)
    ner_workers: int = Field(ge=1, le=16)
    # how the routes combine when the model route runs (MergeRule above)
    merge_priority: list[Literal["dictionary", "model", "llm"]]
    min_model_score: float = Field(ge=0.0, le=1.0)
    min_dictionary_support: float = Field(ge=0.0, le=1.0)
    min_widen_score: float | None = Field(ge=0.0, le=1.0)  # null: never widen
    # re-choose each kept span's concept from its context (tools/diseases/context_concepts.py,
    # fitted by `make diseases-normaliser`); false: the rules' concept per string
    concept_chooser: bool

    def merge_rule(self) -> MergeRule:
        return MergeRule(tuple(self.merge_priority), self.min_model_score,
                         self.min_dictionary_support, self.min_widen_score)


class CitationSettings(_Strict):
    llm: bool
    llm_model: str  # loaded only when the classifier cannot lend its base model
    max_new_tokens: int = Field(ge=16)  # the answer's budget per abstract, whatever its citations


class SummarySettings(_Strict):
    llm: bool


class ChatSettings(_Strict):
    """The local chat model's engine (citations, summary, the "llm" disease route) when it
    loads as its own model: torch, or a CTranslate2 int8 conversion of the base (CPU; CUDA
    always runs torch). A classifier that lends its torch base keeps serving the chat."""

    backend: Backend


class RunSettings(_Strict):
    max_concurrency: int = Field(ge=1)
    checkpoint_db: str


class Settings(_Strict):
    """The run's settings. configs/default.yaml is their one source of defaults: no field
    has a default here, so a key missing from the merged YAML is an error, not a silent
    second default."""

    data_dir: str
    classifier: ClassifierSettings
    preprocessing: PreprocessingSettings
    verifier: VerifierSettings
    decision: DecisionSettings
    diseases: DiseaseSettings
    citations: CitationSettings
    summary: SummarySettings
    chat: ChatSettings
    run: RunSettings

    def data_path(self) -> Path:
        path = Path(os.environ.get("ONCOGRAPH_DATA", self.data_dir)).expanduser()
        return path if path.is_absolute() else (PROJECT_ROOT / path).resolve()


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError as exc:
        raise ConfigError(f"config file not found: {path}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping at the top level")
    return data


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


Model = TypeVar("Model", bound=BaseModel)


def _validate(cls: type[Model], data: dict[str, Any], source: str) -> Model:
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"{source}: {where}: {first['msg']}") from exc


def load_settings(path: str | Path | None = None, **overrides: Any) -> Settings:
    """Defaults, then a user file (argument or ONCOGRAPH_CONFIG), then ONCOGRAPH_MODEL,
    then overrides."""
    data = _read_yaml(CONFIG_DIR / "default.yaml")
    path = path or os.environ.get("ONCOGRAPH_CONFIG") or None
    if path is not None:
        data = _merge(data, _read_yaml(Path(path)))
    if model := os.environ.get("ONCOGRAPH_MODEL"):
        data = _merge(data, {"classifier": {"model": model}})
    data = _merge(data, {k: v for k, v in overrides.items() if v is not None})
    settings = _validate(Settings, data, str(path or "configs/default.yaml"))
    load_model_config(settings.classifier.model)  # fail early on an unknown model
    return settings


def available_models() -> list[str]:
    """The models the reports compare; trials (configs/models/trials/) load by name too."""
    return sorted(p.stem for p in MODELS_DIR.glob("*.yaml"))


def trial_models() -> list[str]:
    return sorted(p.stem for p in TRIALS_DIR.glob("*.yaml"))


@cache
def load_model_config(name_or_path: str) -> ModelConfig:
    """A model by name (configs/models/<name>.yaml, then configs/models/trials/<name>.yaml)
    or by path to a YAML file; a name keeps a trained adapter's card command runnable."""
    path = Path(name_or_path)
    if path.suffix not in {".yaml", ".yml"}:
        path = MODELS_DIR / f"{name_or_path}.yaml"
        if not path.exists():
            path = TRIALS_DIR / f"{name_or_path}.yaml"
    if not path.exists():
        raise ConfigError(
            f"unknown model {name_or_path!r}; available: {', '.join(available_models())}"
            f" (trials: {', '.join(trial_models()) or 'none'})"
        )
    return _validate(ModelConfig, _read_yaml(path), str(path))
