"""Probe kinds: one module per kind, and the registry from kind name to its functions."""

from probes.base import Observation, ProbeContext, ProbeKind
from probes.registry import PROBES

__all__ = ["PROBES", "Observation", "ProbeContext", "ProbeKind"]
