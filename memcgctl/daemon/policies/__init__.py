"""The daemon's policies: one class per `policy = "..."` of a [[group]] rule
(see base.Policy), and the pool of [[pool]] (pool.PoolPolicy)."""

from __future__ import annotations

from .base import Policy, Reading, Step
from .pool import PoolPolicy
from .pressure import PressurePolicy
from .watermark import WatermarkPolicy

POLICIES = {
    "watermark": WatermarkPolicy,
    "pressure": PressurePolicy,
}

__all__ = ["POLICIES", "Policy", "PoolPolicy", "PressurePolicy", "Reading", "Step", "WatermarkPolicy"]
