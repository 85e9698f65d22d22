"""Entry point for LangGraph Studio / `langgraph dev` (langgraph.json points here).

The server looks the variable up in the module's namespace, so it must be a real module
attribute (graph/__init__.py compiles lazily for importers instead).
"""

from graph.builder import compile_graph

graph = compile_graph()
