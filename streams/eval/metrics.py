"""Per-policy metrics from realised outcomes (pure numpy; same code for policies and oracles).

* ``accuracy``: mean realised correctness; ``accuracy_per_dataset`` likewise.
* ``floor_met``: every dataset's accuracy over the whole run >= its floor.
* ``floor_met_fraction``: fraction of event-time windows (``floor_window_ms``, default 24 h)
  whose average accuracy meets the window's floor, the request-weighted mean of the per-dataset
  floors of the requests in it (pooled: per-dataset daily windows hold too few requests for a
  0/1 outcome to say much; ``floor_met_fraction_per_dataset`` reports them anyway);
  ``floor_windows_met`` of ``floor_windows``, and ``[met, counted]`` per dataset.
* ``latency_p95_ms``: p95 of client-side latency (serving + RTT); ``slo_met``: <= the SLO.
* ``budget_violation_g``: sum over tenants and tumbling budget windows of the spend above the
  tenant's budget.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class MetricSettings:
    floors: Mapping[str, float]
    slo_ms: float
    budgets_g: Mapping[str, float]
    budget_window_ms: int
    floor_window_ms: int = 24 * 3_600_000
    min_window_requests: int = 20


def _windows(ts_ms: IntArray, width_ms: int) -> IntArray:
    return ((ts_ms - ts_ms.min()) // width_ms).astype(np.int64) if ts_ms.size else ts_ms


def floor_window_stats(
    ts_ms: IntArray,
    correct: npt.NDArray[np.integer[Any]] | npt.NDArray[np.floating[Any]],
    floor_per_request: FloatArray,
    width_ms: int,
    min_requests: int,
) -> tuple[int, int]:
    """(windows meeting the floor, windows counted) over pooled event-time windows."""
    w = _windows(ts_ms, width_ms)
    met = counted = 0
    for win in np.unique(w):
        sel = w == win
        if sel.sum() < min_requests:
            continue
        counted += 1
        met += int(correct[sel].mean() >= floor_per_request[sel].mean() - 1e-12)
    return met, counted


def budget_violation_g(
    ts_ms: IntArray,
    tenant_idx: IntArray,
    tenants: Sequence[str],
    co2_g: FloatArray,
    budgets_g: Mapping[str, float],
    window_ms: int,
) -> float:
    w = (ts_ms // window_ms).astype(np.int64)  # epoch-aligned, like the core's buckets
    total = 0.0
    for t, name in enumerate(tenants):
        budget = budgets_g.get(name)
        if budget is None:
            continue
        sel = tenant_idx == t
        if not sel.any():
            continue
        wins, inv = np.unique(w[sel], return_inverse=True)
        spend = np.bincount(inv, weights=co2_g[sel], minlength=wins.size)
        total += float(np.maximum(spend - budget, 0.0).sum())
    return total


def policy_metrics(
    *,
    ts_ms: IntArray,
    dataset_idx: IntArray,
    dataset_names: Sequence[str],
    tenant_idx: IntArray,
    tenants: Sequence[str],
    chosen_labels: Sequence[str],
    co2_g: FloatArray,
    energy_j: FloatArray,
    latency_ms: FloatArray,
    correct: npt.NDArray[np.integer[Any]] | npt.NDArray[np.floating[Any]],
    settings: MetricSettings,
) -> dict[str, Any]:
    n = int(co2_g.size)
    floors = np.array([settings.floors.get(d, 0.0) for d in dataset_names])
    floor_req = floors[dataset_idx]
    acc_d: dict[str, float] = {}
    co2_d: dict[str, float] = {}
    gap_d: dict[str, float] = {}
    per_ds_windows: dict[str, float | None] = {}
    per_ds_counts: dict[str, list[int]] = {}
    for d, name in enumerate(dataset_names):
        sel = dataset_idx == d
        if not sel.any():
            continue
        acc_d[name] = float(correct[sel].mean())
        co2_d[name] = float(co2_g[sel].mean())
        gap_d[name] = acc_d[name] - float(floors[d])
        met, counted = floor_window_stats(
            ts_ms[sel], correct[sel], floor_req[sel], settings.floor_window_ms,
            settings.min_window_requests,
        )  # fmt: skip
        per_ds_windows[name] = met / counted if counted else None
        per_ds_counts[name] = [met, counted]
    met, counted = floor_window_stats(
        ts_ms, correct, floor_req, settings.floor_window_ms, settings.min_window_requests
    )
    p95 = float(np.percentile(latency_ms, 95)) if n else 0.0
    p95_d = {
        name: float(np.percentile(latency_ms[dataset_idx == d], 95))
        for d, name in enumerate(dataset_names)
        if (dataset_idx == d).any()
    }
    counts = Counter(chosen_labels)
    return {
        "requests": n,
        "co2_g_per_request": float(co2_g.mean()) if n else 0.0,
        "co2_g_total": float(co2_g.sum()),
        "co2_g_per_request_per_dataset": co2_d,
        "energy_j_per_request": float(energy_j.mean()) if n else 0.0,
        "accuracy": float(correct.mean()) if n else 0.0,
        "accuracy_per_dataset": acc_d,
        "floor_gap_per_dataset": gap_d,
        "floor_met": bool(all(g >= -1e-12 for g in gap_d.values())),
        "floor_met_pooled": bool(correct.mean() >= floor_req.mean() - 1e-12) if n else True,
        "floor_met_fraction": met / counted if counted else 1.0,
        "floor_windows": counted,
        "floor_windows_met": met,
        "floor_met_fraction_per_dataset": per_ds_windows,
        "floor_windows_per_dataset": per_ds_counts,
        "latency_p95_ms": p95,
        "latency_p95_ms_per_dataset": p95_d,
        "latency_mean_ms": float(latency_ms.mean()) if n else 0.0,
        "slo_met": bool(p95 <= settings.slo_ms),
        "budget_violation_g": budget_violation_g(
            ts_ms, tenant_idx, tenants, co2_g, settings.budgets_g, settings.budget_window_ms
        ),
        "decisions_per_model_region": dict(sorted(counts.items())),
    }
