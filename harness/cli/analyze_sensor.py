"""``harness analyze emva1288 | defects | uniformity`` (filled in by the SensorAnalysis work)."""

from __future__ import annotations
