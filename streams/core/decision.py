"""The Decision value every policy returns, and its JSON-safe audit record.

A decision keeps a reference to its batch's estimate matrices (no per-decision copies), so
creating one is cheap; ``to_record()`` converts its row to lists only when called. A caller that
serialises records can hand ``to_record`` its own ``BatchRows`` whose per-candidate rows are
already-encoded values (the router's ``streams.app.record_bytes.BatchEncoder``): the record
is the same, only the row containers differ.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from streams.core.catalog import FloatArray
from streams.core.context import BoolArray, Estimates, RoutingContext
from streams.core.intensity import IntensityInForce, IntensityReading
from streams.core.tenant import Duals

RECORD_FORMAT = "gar-decision/1"


class Reason:
    """Reason codes (strings in the record)."""

    OPTIMAL = "optimal"
    """Minimum of the policy's score over the feasible set."""
    INFEASIBLE_FALLBACK = "infeasible_fallback"
    """Feasible set empty: least normalised constraint violation among eligible candidates."""
    BASELINE = "baseline"
    """A baseline's fixed rule (no feasibility notion)."""


@dataclass(frozen=True, slots=True)
class DecisionContext:
    """What a decision shares with its batch (one object per batch)."""

    policy: str
    ctx: RoutingContext
    est: Estimates
    feasible: BoolArray
    """(N, K) feasible sets before any budget-hard filter (see ``Decision.feasible``)."""
    chose_on_optimistic: bool = False
    """The policy chose on ``est.accuracy_choice`` (gar-pd exploring): the record's
    per-candidate ``accuracy`` is that, ``accuracy_est`` the scoring accuracy of the choice."""
    cache: list[BatchRows] = field(default_factory=list, compare=False, repr=False)

    def rows(self) -> BatchRows:
        if not self.cache:
            self.cache.append(
                BatchRows(self.ctx, self.est, self.feasible, self.chose_on_optimistic)
            )
        return self.cache[0]


class Decision(NamedTuple):
    """One routing decision (a named tuple: cheap to build on the hot path)."""

    shared: DecisionContext
    row: int
    candidate: int
    reason: str
    lam_before: float
    mu_before: float
    nu_before: float
    lam_after: float
    mu_after: float
    nu_after: float
    budget_g: float | None
    budget_left_g: float | None
    """Budget left in the window when the budget is hard (green), else None."""
    window_spend_g_before: float
    window_count_before: int
    in_window: bool
    """Whether the request counted toward the rolling window (False only if very late)."""
    tenant_seq: int
    """The tenant's decision sequence number (1-based) after this decision."""
    feedback: float = 0.0
    """Correctness surprise folded into this decision's mu step (``TenantState.surprise``):
    the record's ``accuracy_est`` is the chosen scoring accuracy plus this."""
    mu_scope: str | None = None
    """The scope whose pooled accuracy dual priced this decision (``mu_pooled``), else None
    (the tenant's own dual)."""
    mu_seq: int = 0
    """The scope's decision count after this decision (pooled duals only)."""
    deficit: tuple[float, float] | None = None
    """gar-target: the (tenant, dataset) running accuracy deficit before and after this
    decision (its threshold depends on it); None for the other policies."""

    @property
    def feasible(self) -> BoolArray:
        """(K,) the feasible set the choice was made over."""
        base: BoolArray = self.shared.feasible[self.row]
        if self.budget_left_g is None:
            return base
        out: BoolArray = base & (self.shared.est.co2_g[self.row] <= self.budget_left_g)
        return out

    @property
    def duals_before(self) -> Duals:
        return Duals(self.lam_before, self.mu_before, self.nu_before)

    @property
    def duals_after(self) -> Duals:
        return Duals(self.lam_after, self.mu_after, self.nu_after)

    # --- convenient views ----------------------------------------------------------------------
    @property
    def request_id(self) -> str:
        return self.shared.est.requests[self.row].request_id

    @property
    def tenant(self) -> str:
        return self.shared.est.requests[self.row].tenant

    @property
    def model(self) -> str:
        cat = self.shared.ctx.catalog
        return cat.deployments[self.candidate][0]

    @property
    def region(self) -> str:
        return self.shared.ctx.catalog.deployments[self.candidate][1]

    @property
    def co2_g(self) -> float:
        return float(self.shared.est.co2_g[self.row, self.candidate])

    @property
    def accuracy(self) -> float:
        return float(self.shared.est.accuracy[self.row, self.candidate])

    @property
    def latency_ms(self) -> float:
        return float(self.shared.est.latency_ms[self.row, self.candidate])

    def zone_intensity(self) -> IntensityInForce:
        ctx, est = self.shared.ctx, self.shared.est
        r = int(ctx.catalog.cand_region_idx[self.candidate])
        return ctx.zone_intensity(r, int(est.ts_ms[self.row]))

    # Long on purpose: one flat pass that builds one record per routed request; splitting it
    # adds a call and the unpacked locals' lookups per record on the hot path.
    def to_record(self, rows: BatchRows | None = None) -> dict[str, Any]:
        """JSON-safe dict with everything needed to re-derive this decision (see replay.py).

        The batch's matrices are converted to Python lists once (on the first call for any
        decision of the batch), so each record only indexes lists. ``rows``: the batch's rows
        built by the caller (same batch), e.g. with pre-encoded per-candidate rows."""
        # One unpack instead of an attribute lookup per field (hot path: one record per request).
        (
            sh,
            i,
            k,
            reason,
            lam_b,
            mu_b,
            nu_b,
            lam_a,
            mu_a,
            nu_a,
            budget,
            left,
            spend0,
            count0,
            in_win,
            seq,
            fb,
            mu_scope,
            mu_seq,
            _,
        ) = self
        b = sh.rows() if rows is None else rows
        est = sh.est
        req = est.requests[i]
        m, r = b.deployments[k]
        ri = b.cand_region[k]
        j = i * b.n_regions + ri
        age = b.age[j]
        stale = b.stale[j]
        if left is None:
            feasible = b.feasible_sets[b.feasible_of[i]][:]  # each record owns its list
        else:
            feasible = np.flatnonzero(self.feasible).tolist()
        return {
            "format": RECORD_FORMAT,
            "request_id": req.request_id,
            "tenant": req.tenant,
            "dataset": req.dataset,
            "ts_ms": req.ts_ms,
            "client_region": req.client_region,
            "input_tokens": req.input_tokens,
            "output_tokens_est": req.output_tokens_est,
            "policy": sh.policy,
            "policy_version": b.policy_version,
            "mode": b.mode,
            "catalog_version": b.catalog_version,
            "estimator_seq": b.estimator_seq,
            "candidate": k,
            "model": m,
            "region": r,
            "reason": reason,
            # Chosen entries straight from the matrices (the rows may be pre-encoded); the
            # recorded accuracy_est is the scoring accuracy even when the choice was optimistic.
            "co2_g": est.co2_g.item(i, k),
            "accuracy_est": est.accuracy.item(i, k) + fb,
            "latency_p95_ms_est": est.latency_ms.item(i, k),
            "floor": b.floor[i],
            "latency_cap_ms": b.cap[i],
            "carbon_ref_g": sh.ctx.carbon_ref_g,
            "budget_g": budget,
            "window_spend_g_before": spend0,
            "window_count_before": count0,
            "in_window": in_win,
            "tenant_seq": seq,
            "intensity_stale": stale,
            "duals_before": {"lambda": lam_b, "mu": mu_b, "nu": nu_b},
            "duals_after": {"lambda": lam_a, "mu": mu_a, "nu": nu_a},
            **({} if mu_scope is None else {"mu_scope": mu_scope, "mu_seq": mu_seq}),
            "intensity": {
                **(b.reading[ri] if b.reading_idx is None else b.reading_at(ri, b.reading_idx[j])),
                "intensity_g_per_kwh": b.used[j],
                "age_ms": None if age < 0 else age,
                "stale": stale,
            },
            "candidates": {
                "co2_g": b.co2[i],
                "accuracy": b.acc[i],
                "latency_ms": b.lat[i],
                "feasible": feasible,
                "eligible": None if b.eligible_all[i] else b.eligible_sets[b.eligible_of[i]][:],
            },
        }


MatrixRows = Callable[[FloatArray], Sequence[Any]]
"""(N, K) matrix -> one JSON value per row (default: ``ndarray.tolist``)."""


def _tolist(m: FloatArray) -> Sequence[Any]:
    rows: list[list[float]] = m.tolist()
    return rows


class BatchRows:
    """A batch's estimates as Python lists (built once, shared by its decisions' records).

    ``matrix_rows`` converts the three per-candidate (N, K) matrices (CO2, accuracy, latency);
    it must yield, per row, something that serialises to the same JSON as the row's list."""

    __slots__ = (
        "_history_fields",
        "acc",
        "age",
        "cand_region",
        "cap",
        "catalog_version",
        "co2",
        "deployments",
        "eligible_all",
        "eligible_of",
        "eligible_sets",
        "estimator_seq",
        "feasible_of",
        "feasible_sets",
        "floor",
        "history",
        "lat",
        "mode",
        "n_regions",
        "policy_version",
        "reading",
        "reading_idx",
        "stale",
        "used",
        "zones",
    )

    def __init__(
        self,
        ctx: RoutingContext,
        est: Estimates,
        feasible: BoolArray,
        chose_on_optimistic: bool = False,
        matrix_rows: MatrixRows = _tolist,
    ) -> None:
        cat = ctx.catalog
        self.co2: Sequence[Any] = matrix_rows(est.co2_g)
        # The per-candidate accuracy is what the policy chose on (the optimistic one when it
        # explored); the scoring accuracy's chosen entry is read with .item() in to_record.
        if chose_on_optimistic and est.accuracy_choice is not None:
            self.acc: Sequence[Any] = matrix_rows(est.accuracy_choice)
        else:
            self.acc = matrix_rows(est.accuracy)
        self.lat: Sequence[Any] = matrix_rows(est.latency_ms)
        self.floor: list[float] = est.floor.tolist()
        self.cap: list[float] = est.latency_cap_ms.tolist()
        # The (N, R) per-region values flat (row i, region r at i * R + r): a list per row
        # would be a GC-tracked object each, alive until the batch is encoded (3 per request:
        # a good part of what triggers the worker's young collections).
        self.n_regions: int = est.intensity_g_per_kwh.shape[1]
        self.used: list[float] = est.intensity_g_per_kwh.ravel().tolist()
        self.age: list[int] = est.intensity_age_ms.ravel().tolist()
        self.stale: list[bool] = est.intensity_stale.ravel().tolist()
        self.eligible_all: list[bool] = np.all(est.eligible, axis=1).tolist()
        self.eligible_sets, self.eligible_of = _row_cols(est.eligible)
        self.feasible_sets, self.feasible_of = _row_cols(feasible)
        self.deployments = cat.deployments
        self.cand_region: list[int] = cat.cand_region_idx.tolist()
        self.policy_version = ctx.config.version
        self.mode = ctx.config.mode
        self.catalog_version = cat.version
        self.estimator_seq = ctx.snapshot.seq
        self.zones: list[str] = [reg.zone for reg in cat.regions]
        self.reading: list[dict[str, Any]] = [
            _reading_fields(zone, rd)
            for zone, rd in zip(self.zones, ctx.region_readings, strict=True)
        ]
        # Requests priced with an older reading than the latest (a replay, a feed ahead):
        # each (request, region)'s reading in force, flat like ``used``.
        self.history = ctx.region_history
        self.reading_idx: list[int] | None = (
            None if est.intensity_reading is None else est.intensity_reading.ravel().tolist()
        )
        self._history_fields: dict[tuple[int, int], dict[str, Any]] = {}

    def reading_at(self, region: int, pos: int) -> dict[str, Any]:
        """The record fields of region ``region``'s retained reading ``pos`` (-1: none)."""
        key = (region, pos)
        got = self._history_fields.get(key)
        if got is None:
            rd = self.history[region][pos] if pos >= 0 else None
            got = self._history_fields[key] = _reading_fields(self.zones[region], rd)
        return got


def _reading_fields(zone: str, rd: IntensityReading | None) -> dict[str, Any]:
    return {
        "zone": zone,
        "reading_g_per_kwh": None if rd is None else rd.intensity_g_per_kwh,
        "ts_ms": None if rd is None else rd.ts_ms,
        "source": None if rd is None else rd.source,
        "signal_type": None if rd is None else rd.signal_type,
        "estimated": None if rd is None else rd.estimated,
        "source_offset": None if rd is None else rd.source_offset,
    }


def _row_cols(mask: BoolArray) -> tuple[list[list[int]], list[int]]:
    """The column lists of the distinct rows of an (N, K) mask and each row's index into them.
    A batch has a few distinct rows (allow-lists, feasibility patterns): each row's bits,
    packed into 64-bit words, are an exact key, so a few ``np.unique`` calls group them and
    only the distinct rows are converted to lists."""
    n, k = mask.shape
    if n == 0 or k == 0:
        return [[]], [0] * n
    packed = np.packbits(mask, axis=1)
    words = -(-packed.shape[1] // 8)
    padded = np.zeros((n, 8 * words), dtype=np.uint8)
    padded[:, : packed.shape[1]] = packed
    keys = padded.view(np.uint64)
    if words == 1:
        _, first, which = np.unique(keys[:, 0], return_index=True, return_inverse=True)
    else:
        _, first, which = np.unique(keys, axis=0, return_index=True, return_inverse=True)
    return [np.flatnonzero(mask[j]).tolist() for j in first.tolist()], which.ravel().tolist()
