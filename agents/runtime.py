"""What every node needs from the run: the settings, taken from the LangGraph config.

The CLI/API pass a ready `Settings` under configurable["settings"]; Studio and other apps
may pass plain overrides (configurable["model"], configurable["config_path"]).
"""

from __future__ import annotations

from functools import lru_cache

from langchain_core.runnables import RunnableConfig

from core.settings import Settings, load_settings


@lru_cache(maxsize=8)
def _load(config_path: str | None, model: str | None) -> Settings:
    return load_settings(config_path, classifier={"model": model} if model else None)


def settings_for(config: RunnableConfig | None) -> Settings:
    configurable = (config or {}).get("configurable", {})
    settings = configurable.get("settings")
    if isinstance(settings, Settings):
        return settings
    return _load(configurable.get("config_path"), configurable.get("model"))
