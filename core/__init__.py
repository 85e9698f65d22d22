"""The ground floor: plain types and contracts that every other package imports.

The record schema, the graph state, the input contract (readers, writers, row statuses),
the settings, the labels and the metrics. Nothing here imports tools/, agents/, graph/,
finetune/ or eval/ (tests/unit/test_layers.py checks it).
"""
