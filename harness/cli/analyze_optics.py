"""``harness analyze sfr | colour | focus`` (filled in by the OpticsAnalysis work)."""

from __future__ import annotations
