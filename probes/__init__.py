"""Probe kinds: one module (or package) per kind, each with its `KIND`, and what only probes
need.

The kinds are found through the entry-point group `zeroprobe.kinds` (zeroprobe's own
pyproject.toml registers these built-in ones), never through a list here.
"""
