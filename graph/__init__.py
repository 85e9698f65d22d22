"""OncoGraph: `from graph import graph` gives the compiled LangGraph workflow (no checkpointer).

The graph is compiled on first access (PEP 562), so `core.io` or `core.schema` can be
imported by training code without pulling in every node. Compiling loads no model:
models load on first use, once per process.
"""

from __future__ import annotations

from functools import cache
from typing import Any

__all__ = ["graph"]


@cache
def _compiled() -> Any:
    from graph.builder import compile_graph

    return compile_graph()


def __getattr__(name: str) -> Any:
    if name == "graph":
        return _compiled()
    raise AttributeError(f"module 'graph' has no attribute {name!r}")
