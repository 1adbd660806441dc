"""RoutingContext: an immutable snapshot (catalog + policy config + estimator snapshot +
intensity view) that prices a batch of requests against all K candidates at once.

``RoutingContext.estimate(requests)`` returns the N x K matrices every policy decides on:
CO2 (g), scoring accuracy, p95 latency (ms), and the hard-filter masks. Everything here is
vectorised; policies only loop where the duals make request i depend on request i-1.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from hashlib import blake2b
from operator import attrgetter

import numpy as np
import numpy.typing as npt

from streams.core.catalog import Catalog, FloatArray, IntArray
from streams.core.errors import RequestError, StateError
from streams.core.estimators import (
    PRIOR_P95_FACTOR,
    REFERENCE_INPUT_TOKENS,
    EstimatorSnapshot,
    EstimatorState,
    beta_lcb,
    kl_ucb,
)
from streams.core.inputs import Request
from streams.core.intensity import IntensityInForce, IntensityReading, IntensityView
from streams.core.policy_config import LATENCY_QUANTILES, PolicyConfig

BoolArray = npt.NDArray[np.bool_]
_REQUEST_COLUMNS = attrgetter(
    "dataset",
    "client_region",
    "ts_ms",
    "input_tokens",
    "output_tokens_est",
    "floor",
    "latency_cap_ms",
    "allow_models",
    "deny_models",
    "allow_regions",
    "deny_regions",
)
J_PER_KWH = 3.6e6
REFERENCE_INTENSITY_G_PER_KWH = 400.0


@dataclass(frozen=True, eq=False)
class Estimates:
    """Per-request x per-candidate estimates for one batch (read-only arrays)."""

    requests: Sequence[Request]
    dataset_idx: IntArray  # (N,)
    ts_ms: IntArray  # (N,)
    floor: FloatArray  # (N,) F_i: request override or the context's (adaptive) floor
    latency_cap_ms: FloatArray  # (N,) request override or the SLO
    co2_g: FloatArray  # (N, K)
    accuracy: FloatArray  # (N, K) scoring accuracy (LCB or mean, per config)
    latency_ms: FloatArray  # (N, K) p95 estimate incl. client RTT
    eligible: BoolArray  # (N, K) allow/deny overrides
    latency_ok: BoolArray  # (N, K)
    intensity_g_per_kwh: FloatArray  # (N, R) value used per region (after stale fallback)
    intensity_age_ms: IntArray  # (N, R), -1 where the zone has no reading
    intensity_stale: BoolArray  # (N, R)
    accuracy_choice: FloatArray | None = None
    """(N, K) optimistic accuracy gar-pd chooses on (config.explore_z > 0), else None."""
    intensity_reading: IntArray | None = None
    """(N, R) index into ``RoutingContext.region_history`` of the reading in force at each
    request's event time (-1: none at or before it), or None when every request is priced
    with its region's latest reading (the live case)."""

    @property
    def n(self) -> int:
        return len(self.requests)

    def take(self, rows: Sequence[int]) -> Estimates:
        """The estimates of ``rows`` (in that order) as a new batch."""
        idx = np.asarray(rows, dtype=np.int64)
        return Estimates(
            [self.requests[int(i)] for i in idx],
            self.dataset_idx[idx],
            self.ts_ms[idx],
            self.floor[idx],
            self.latency_cap_ms[idx],
            self.co2_g[idx],
            self.accuracy[idx],
            self.latency_ms[idx],
            self.eligible[idx],
            self.latency_ok[idx],
            self.intensity_g_per_kwh[idx],
            self.intensity_age_ms[idx],
            self.intensity_stale[idx],
            None if self.accuracy_choice is None else self.accuracy_choice[idx],
            None if self.intensity_reading is None else self.intensity_reading[idx],
        )


def _by_dataset(by_model: FloatArray, cand_model_idx: IntArray) -> FloatArray:
    """(M, D) per model -> (D, K) per candidate, rows contiguous for row gathers."""
    out: FloatArray = np.ascontiguousarray(by_model[cand_model_idx, :].T)
    return out


_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


def _splitmix64(x: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    z = x + _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    out: npt.NDArray[np.uint64] = z ^ (z >> np.uint64(31))
    return out


def request_normals(requests: Sequence[Request], m: int) -> FloatArray:
    """(N, m) standard normal draws that depend only on each request's (tenant, request id):
    blake2b seeds, splitmix64 streams, Box-Muller."""
    seeds = np.fromiter(
        (
            int.from_bytes(
                blake2b(f"{r.tenant}\x00{r.request_id}".encode(), digest_size=8).digest(),
                "little",
            )
            for r in requests
        ),
        dtype=np.uint64,
        count=len(requests),
    )
    cols = np.arange(2 * m, dtype=np.uint64) * _GOLDEN
    with np.errstate(over="ignore"):
        bits = _splitmix64(seeds[:, None] + cols[None, :])
    u = ((bits >> np.uint64(11)).astype(np.float64) + 0.5) * 2.0**-53
    u1, u2 = u[:, :m], u[:, m:]
    out: FloatArray = np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)
    return out


ANCHOR_THRESHOLD = 0.5 * 2.5**2
"""KL threshold at which observed answers reject a model's benchmark claim (z = 2.5)."""


def optimistic_accuracy(
    config: PolicyConfig,
    snap: EstimatorSnapshot,
    acc_score: FloatArray,
    catalog: Catalog,
    floors: FloatArray,
) -> FloatArray:
    """(M, D) accuracy gar-pd chooses on when it explores (optimism under uncertainty). Both
    rules are deterministic, so a decision re-derives from its record.

    * ``sd``: scoring accuracy + explore_z x posterior sd; the bonus shrinks as 1/sqrt(n).
    * ``kl-ucb``: the KL upper confidence bound with threshold explore_z x ln(e + N_d), N_d
      = graded answers observed on the dataset over the deployed models. The threshold grows
      with the dataset's traffic, so a model whose estimate fell under the others after an
      unlucky run of answers is eventually tried again (a fixed bonus can abandon it for
      good: the sample mean of an arm dropped after a bad streak is biased low).
    """
    sd = np.sqrt(snap.acc_mean * (1.0 - snap.acc_mean) / (snap.acc_n + 1.0))
    out: FloatArray = np.clip(acc_score + config.explore_z * sd, 0.0, 1.0)
    if config.explore_rule == "sd":
        return out
    if config.explore_rule == "anchored":
        # The benchmark's claim (the prior mean) stays the optimistic value until the answers
        # observed so far reject it: it is above their KL upper bound at a strict threshold.
        # An early unlucky run cannot drop a model the benchmark rates well (the sample mean of
        # a model dropped after a bad streak is biased low), and a wrong claim is dropped once
        # the data is conclusive. mu still steps on the posterior mean.
        obs = snap.acc_obs
        obs_mean = np.divide(snap.acc_obs_correct, obs, out=np.zeros_like(obs), where=obs > 0)
        bound = kl_ucb(obs_mean, obs, np.full_like(obs, ANCHOR_THRESHOLD))
        anchored = np.minimum(snap.acc_prior_mean, np.where(obs > 0, bound, 1.0))
        return np.maximum(out, np.clip(acc_score + (anchored - snap.acc_mean), 0.0, 1.0))
    deployed = np.unique(catalog.cand_model_idx)
    n_d = snap.acc_obs[deployed].sum(axis=0)  # (D,) graded answers on each dataset
    # Models that serve each dataset: a dataset-specific prior in the catalog.
    serves = np.asarray(
        [[d in catalog.models[m].correctness_prior for d in catalog.datasets] for m in deployed]
    )
    k_d = np.maximum(serves.sum(axis=0), 1)
    fair = n_d[None, :] / (k_d[None, :] * np.maximum(snap.acc_n, 1.0))
    grow = np.log(np.maximum(fair, 1.0))
    if config.explore_rule == "kl-ucb-short":
        # Only where no serving model's optimistic accuracy reaches the floor target.
        best = np.where(serves, out[deployed], -np.inf).max(axis=0)
        grow = grow * (best < floors + config.floor_margin)[None, :]
    threshold = 0.5 * config.explore_z**2 + grow
    ucb = kl_ucb(snap.acc_mean, snap.acc_n, threshold)
    # Optimism is added on top of the scoring accuracy (the LCB in strict mode).
    out = np.clip(acc_score + (ucb - snap.acc_mean), 0.0, 1.0)
    return out


@dataclass(frozen=True, eq=False)
class RoutingContext:
    catalog: Catalog
    config: PolicyConfig
    snapshot: EstimatorSnapshot
    intensity: IntensityView
    acc_score: FloatArray  # (M, D)
    acc_choice: FloatArray | None  # (M, D) acc_score + explore_z x sd, None without exploration
    floors: FloatArray  # (D,) F_d after the adaptive rule
    carbon_ref_g: float
    e_pre_j: FloatArray  # (K,) refined prefill energy
    e_in_j: FloatArray  # (K,)
    e_out_j: FloatArray  # (K,)
    ttft_ms: FloatArray  # (K,)
    itl_ms: FloatArray  # (K,)
    cand_pue: FloatArray  # (K,)
    region_readings: tuple[IntensityReading | None, ...]  # (R,) latest
    region_history: tuple[tuple[IntensityReading, ...], ...]  # (R,) retained, oldest first
    region_history_ts_ms: tuple[IntArray, ...]  # (R,) their ts_ms
    region_history_value: tuple[FloatArray, ...]  # (R,) their values
    region_value: FloatArray  # (R,) latest value
    region_ts_ms: IntArray  # (R,) latest reading ts, -1 missing
    region_fallback: FloatArray  # (R,) stale value
    params_b: FloatArray  # (M,)
    latency_factor: FloatArray  # (K,) slowness factor at config.latency_quantile
    # Per-candidate tables gathered by row in ``estimate`` (a row gather is ~10x cheaper than
    # the equivalent 2-D fancy index, same values):
    out_tokens_dk: FloatArray  # (D, K) snapshot output tokens of each candidate's model
    acc_score_dk: FloatArray  # (D, K) acc_score of each candidate's model
    acc_choice_dk: FloatArray | None  # (D, K) acc_choice likewise
    sample_sd_dm: FloatArray | None  # (D, M) Thompson sampling: explore_z x posterior sd
    rtt_ck: FloatArray  # (client regions incl. the unknown row, K) RTT to each candidate
    # Overrides -> (validation result, eligibility row): real requests repeat a few allow-lists.
    _override_memo: dict[tuple[object, ...], tuple[str | None, BoolArray]] = field(
        default_factory=dict, repr=False, compare=False
    )
    # tenant -> the context of its override (``for_tenant``), built once per context
    _tenant_ctx: dict[str, RoutingContext] = field(default_factory=dict, repr=False, compare=False)
    # (PRIOR_P95_FACTOR below the min count)

    # Long on purpose: the per-batch pricing arrays are derived in dependency order in one
    # place (accuracy score -> feasibility -> carbon), and the context is immutable afterwards.
    @classmethod
    def build(
        cls,
        catalog: Catalog,
        config: PolicyConfig,
        estimators: EstimatorState | EstimatorSnapshot | None = None,
        intensity: IntensityView | None = None,
    ) -> RoutingContext:
        if estimators is None:
            estimators = EstimatorState(catalog)
        snap = (
            estimators.snapshot(config.lcb_z)
            if isinstance(estimators, EstimatorState)
            else estimators
        )
        if snap.acc_mean.shape != (len(catalog.models), len(catalog.datasets)) or (
            snap.energy_scale.shape != (catalog.n_candidates,)
        ):
            raise StateError("estimator snapshot does not match the catalog")
        view = intensity if intensity is not None else IntensityView()
        if not config.use_lcb:
            acc_score = snap.acc_mean
        elif snap.lcb_z == config.lcb_z:
            acc_score = snap.acc_lcb
        else:  # a snapshot taken for another z: recompute rather than use the wrong bound
            acc_score = beta_lcb(snap.acc_mean, snap.acc_n, config.lcb_z)
        acc_choice = None
        floors = np.asarray([config.floor_min_for(d) for d in catalog.datasets])
        if config.adaptive_floor_alpha is not None:
            best = snap.acc_mean[np.unique(catalog.cand_model_idx)].max(axis=0)
            floors = np.maximum(floors, config.adaptive_floor_alpha * best)
        sample_sd = None
        if config.explore_z > 0 and config.explore_rule == "thompson":
            sd = np.sqrt(snap.acc_mean * (1.0 - snap.acc_mean) / (snap.acc_n + 1.0))
            sample_sd = config.explore_z * sd
        elif config.explore_z > 0:
            acc_choice = optimistic_accuracy(config, snap, acc_score, catalog, floors)
            acc_choice.flags.writeable = False
        cm, cr = catalog.cand_model_idx, catalog.cand_region_idx
        models = catalog.models
        pre = np.asarray([m.prefill_energy_j for m in models])[cm] * snap.energy_scale
        e_in = np.asarray([m.energy_per_input_token_j for m in models])[cm] * snap.energy_scale
        e_out = np.asarray([m.energy_per_output_token_j for m in models])[cm] * snap.energy_scale
        cand_pue = catalog.pue[cr]
        if config.carbon_ref_g is not None:
            ref = config.carbon_ref_g
        else:
            # Median candidate's CO2 for a reference request at a reference intensity: depends
            # on the catalog only, so the normaliser is stable across snapshots.
            raw_out = np.asarray([m.energy_per_output_token_j for m in models])[cm]
            raw_in = np.asarray([m.energy_per_input_token_j for m in models])[cm]
            raw_pre = np.asarray([m.prefill_energy_j for m in models])[cm]
            out_tok = np.asarray([m.output_tokens_for("*") for m in models])[cm]
            e_ref = raw_pre + raw_in * REFERENCE_INPUT_TOKENS + raw_out * out_tok
            ref = float(np.median(e_ref / J_PER_KWH * REFERENCE_INTENSITY_G_PER_KWH * cand_pue))
            ref = max(ref, 1e-12)
        readings: list[IntensityReading | None] = []
        value, ts, fallback = [], [], []
        history = tuple(
            tuple(sorted(view.history(r.zone), key=lambda h: h.ts_ms)) for r in catalog.regions
        )
        for r in catalog.regions:
            rd = view.latest(r.zone)
            readings.append(rd)
            value.append(rd.intensity_g_per_kwh if rd else config.stale_intensity_g_per_kwh)
            ts.append(rd.ts_ms if rd else -1)
            rmax = view.recent_max(r.zone)
            fallback.append(rmax if rmax is not None else config.stale_intensity_g_per_kwh)
        arrays = dict(
            acc_score=acc_score,
            floors=floors,
            e_pre_j=pre,
            e_in_j=e_in,
            e_out_j=e_out,
            ttft_ms=np.asarray([m.ttft_ms for m in models])[cm],
            itl_ms=np.asarray([m.itl_ms for m in models])[cm],
            cand_pue=cand_pue,
            region_value=np.asarray(value, dtype=np.float64),
            region_ts_ms=np.asarray(ts, dtype=np.int64),
            region_fallback=np.asarray(fallback, dtype=np.float64),
            params_b=np.asarray([m.params_b for m in models]),
            latency_factor=np.nan_to_num(
                snap.latency_factor_q[LATENCY_QUANTILES.index(config.latency_quantile)],
                nan=PRIOR_P95_FACTOR,
            ),
            out_tokens_dk=_by_dataset(snap.out_tokens, cm),
            acc_score_dk=_by_dataset(acc_score, cm),
            rtt_ck=np.ascontiguousarray(catalog.rtt_ms[:, cr]),
        )
        acc_choice_dk = None if acc_choice is None else _by_dataset(acc_choice, cm)
        sample_sd_dm = None if sample_sd is None else np.ascontiguousarray(sample_sd.T)
        extra = [a for a in (acc_choice_dk, sample_sd_dm) if a is not None]
        for a in (*arrays.values(), *extra):
            a.flags.writeable = False
        return cls(
            catalog=catalog,
            config=config,
            snapshot=snap,
            intensity=view,
            carbon_ref_g=ref,
            acc_choice=acc_choice,
            acc_choice_dk=acc_choice_dk,
            sample_sd_dm=sample_sd_dm,
            region_readings=tuple(readings),
            region_history=history,
            region_history_ts_ms=tuple(
                np.asarray([h.ts_ms for h in hist], dtype=np.int64) for hist in history
            ),
            region_history_value=tuple(
                np.asarray([h.intensity_g_per_kwh for h in hist], dtype=np.float64)
                for hist in history
            ),
            **arrays,
        )

    def for_tenant(self, tenant: str) -> RoutingContext:
        """The context a tenant's requests are priced and decided with: this one, or one built
        on the same estimators and intensities with the tenant's override applied
        (``PolicyConfig.for_tenant``)."""
        if tenant not in self.config.tenant_overrides:
            return self
        hit = self._tenant_ctx.get(tenant)
        if hit is None:
            cfg = self.config.for_tenant(tenant)
            hit = RoutingContext.build(self.catalog, cfg, self.snapshot, self.intensity)
            if self.config.carbon_ref_g is None and cfg.carbon_ref_g is None:
                hit = replace(hit, carbon_ref_g=self.carbon_ref_g)
            self._tenant_ctx[tenant] = hit
        return hit

    # --- validation ----------------------------------------------------------------------------
    def validate(self, req: Request) -> str | None:
        """None if ``req`` can be routed, else a short reason for the dead-letter record."""
        if not req.has_overrides:
            return None
        return self._overrides(req)[0]

    def _overrides(self, req: Request) -> tuple[str | None, BoolArray]:
        key = (req.allow_models, req.deny_models, req.allow_regions, req.deny_regions)
        hit = self._override_memo.get(key)
        if hit is None:
            row = self._eligible_row_uncached(req)
            row.setflags(write=False)  # shared by every request with these overrides
            hit = (self._validate_overrides(req), row)
            if len(self._override_memo) < 4096:
                self._override_memo[key] = hit
        return hit

    def _validate_overrides(self, req: Request) -> str | None:
        cat = self.catalog
        for name in (*(req.allow_models or ()), *(req.deny_models or ())):
            if name not in cat.model_index:
                return f"unknown_model:{name}"
        for name in (*(req.allow_regions or ()), *(req.deny_regions or ())):
            if name not in cat.region_index:
                return f"unknown_region:{name}"
        if not self._eligible_row_uncached(req).any():
            return "no_eligible_candidate"
        return None

    def split_valid(
        self, requests: Sequence[Request]
    ) -> tuple[list[Request], list[tuple[Request, str]]]:
        ok: list[Request] = []
        bad: list[tuple[Request, str]] = []
        for r in requests:
            why = self.validate(r)
            if why is None:
                ok.append(r)
            else:
                bad.append((r, why))
        return ok, bad

    def _eligible_rows(
        self, requests: Sequence[Request], keys: Iterable[tuple[object, ...]]
    ) -> BoolArray:
        """(N, K) eligibility of a batch with overrides: each distinct override tuple (a
        batch repeats a few allow-lists) is validated and priced once, then one gather.
        Raises ``RequestError`` for the first request that fails ``validate``."""
        no_overrides = (None, None, None, None)
        slot: dict[tuple[object, ...], int] = {no_overrides: 0}
        table: list[BoolArray] = [np.ones(self.catalog.n_candidates, dtype=bool)]
        which: list[int] = []
        for i, key in enumerate(keys):
            j = slot.get(key)
            if j is None:
                r = requests[i]
                why, row = self._overrides(r)
                if why is not None:
                    raise RequestError(why, r.request_id)
                j = slot[key] = len(table)
                table.append(row)
            which.append(j)
        out: BoolArray = np.asarray(table)[np.asarray(which, dtype=np.intp)]
        return out

    def _eligible_row_uncached(self, req: Request) -> BoolArray:
        cat = self.catalog
        m_ok = np.ones(len(cat.models), dtype=bool)
        r_ok = np.ones(len(cat.regions), dtype=bool)
        if req.allow_models is not None:
            m_ok[:] = False
            m_ok[[cat.model_index[m] for m in req.allow_models if m in cat.model_index]] = True
        if req.deny_models:
            m_ok[[cat.model_index[m] for m in req.deny_models if m in cat.model_index]] = False
        if req.allow_regions is not None:
            r_ok[:] = False
            r_ok[[cat.region_index[r] for r in req.allow_regions if r in cat.region_index]] = True
        if req.deny_regions:
            r_ok[[cat.region_index[r] for r in req.deny_regions if r in cat.region_index]] = False
        out: BoolArray = m_ok[cat.cand_model_idx] & r_ok[cat.cand_region_idx]
        return out

    # --- pricing -------------------------------------------------------------------------------
    def zone_intensity(self, region_idx: int, ts_ms: int) -> IntensityInForce:
        cfg = self.config
        zone = self.catalog.regions[region_idx].zone
        return self.intensity.resolve(
            zone, ts_ms, cfg.intensity_max_age_ms, cfg.stale_intensity_g_per_kwh
        )

    def _intensity_in_force(
        self, ts: IntArray
    ) -> tuple[FloatArray, IntArray, BoolArray, IntArray | None]:
        """(N, R) intensity used, age (-1: no reading in force), stale flag, and the index of
        the reading in force in ``region_history`` (None when it is the latest everywhere).

        A request is priced with the newest reading at or before its event time. Live that is
        the latest reading; a replayed or backfilled trace, or a feed that publishes ahead
        (forecasts), has newer readings that must not price an older request. A zone with no
        reading at or before the request counts as having none: stale, priced conservatively.
        """
        cfg = self.config
        latest_ts = self.region_ts_ms
        rts = np.broadcast_to(latest_ts, (ts.size, latest_ts.size))
        value = np.broadcast_to(self.region_value, rts.shape)
        reading_idx: IntArray | None = None
        ahead = rts > ts[:, None]
        if ahead.any():
            rts, value = rts.copy(), value.copy()
            reading_idx = np.empty(rts.shape, dtype=np.int64)
            for r in range(rts.shape[1]):
                h_ts = self.region_history_ts_ms[r]
                if not ahead[:, r].any():
                    reading_idx[:, r] = h_ts.size - 1
                    continue
                pos = np.searchsorted(h_ts, ts, side="right") - 1
                found = pos >= 0
                at = np.maximum(pos, 0)
                rts[:, r] = np.where(found, h_ts[at], -1)
                value[:, r] = np.where(found, self.region_history_value[r][at], 0.0)
                reading_idx[:, r] = pos
        missing = rts < 0
        age = ts[:, None] - rts
        stale = (age > cfg.intensity_max_age_ms) | missing
        used = np.where(stale, self.region_fallback[None, :], value)
        age = np.where(missing, -1, age)
        return used, age, stale, reading_idx

    def estimate(self, requests: Sequence[Request]) -> Estimates:
        """Price every request against every candidate. Raises ``RequestError`` if a request
        fails ``validate`` (filter with ``split_valid`` first)."""
        cat, cfg = self.catalog, self.config
        n = len(requests)
        cr = cat.cand_region_idx
        # One C-level pass over the request objects, then column-wise lookups.
        cols = list(zip(*map(_REQUEST_COLUMNS, requests), strict=True)) if n else [()] * 11
        (datasets, clients, ts_l, in_l, out_l, floor_l, cap_l, am, dm, ar, dr) = cols
        ds_get, star = cat.dataset_index.get, len(cat.datasets) - 1
        cl_get, unknown_client = cat.client_index.get, len(cat.client_regions)
        d_idx = np.asarray([ds_get(d, star) for d in datasets], dtype=np.int64)
        c_idx = np.asarray([cl_get(c, unknown_client) for c in clients], dtype=np.int64)
        ts = np.asarray(ts_l, dtype=np.int64).reshape(n)
        in_tok = np.asarray(in_l, dtype=np.float64).reshape(n)
        floor = self.floors[d_idx].copy()
        cap = np.full(n, cfg.latency_slo_ms)
        eligible = np.ones((n, cat.n_candidates), dtype=bool)
        if out_l.count(None) == n:
            given = None
        else:
            given = np.asarray([np.nan if v is None else v for v in out_l], dtype=np.float64)
        if floor_l.count(None) != n:
            for i, v in enumerate(floor_l):
                if v is not None:
                    floor[i] = v
        if cap_l.count(None) != n:
            for i, v in enumerate(cap_l):
                if v is not None:
                    cap[i] = v
        if am.count(None) + dm.count(None) + ar.count(None) + dr.count(None) != 4 * n:
            eligible = self._eligible_rows(requests, zip(am, dm, ar, dr, strict=True))
        # Output tokens: the request's own estimate, else the (model, dataset) estimator.
        out_tok = self.out_tokens_dk[d_idx]
        if given is not None:
            has_given = ~np.isnan(given)
            out_tok = np.where(has_given[:, None], given[:, None], out_tok)
        energy_j = self.e_pre_j + self.e_in_j * in_tok[:, None] + self.e_out_j * out_tok
        used, age, stale, reading_idx = self._intensity_in_force(ts)
        co2 = energy_j * (used[:, cr] * (self.cand_pue / J_PER_KWH))
        acc = self.acc_score_dk[d_idx]
        acc_ch = None if self.acc_choice_dk is None else self.acc_choice_dk[d_idx]
        if self.sample_sd_dm is not None and n:
            # Thompson sampling, reproducible: each request's draw per model comes from a hash
            # of (tenant, request id), so a re-derivation draws the same numbers.
            z = request_normals(requests, self.sample_sd_dm.shape[1])
            draw = self.acc_score_dk[d_idx] + (self.sample_sd_dm[d_idx] * z)[:, cat.cand_model_idx]
            acc_ch = np.clip(draw, 0.0, 1.0)
        # p95 serving latency = the candidate's p95 slowness factor x the catalog's latency for
        # this request's estimated output tokens (per request, so short answers look fast).
        nominal = np.maximum(self.ttft_ms + self.itl_ms * out_tok, 1.0)
        latency = nominal * self.latency_factor + self.rtt_ck[c_idx]
        lat_ok = latency <= (cap * (1.0 - cfg.slo_margin))[:, None]
        arrays = (d_idx, ts, floor, cap, co2, acc, latency, eligible, lat_ok, used, age, stale)
        for a in arrays:
            a.flags.writeable = False
        if reading_idx is not None:
            reading_idx.flags.writeable = False
        if acc_ch is not None:
            acc_ch.flags.writeable = False
        return Estimates(
            requests,
            d_idx,
            ts,
            floor,
            cap,
            co2,
            acc,
            latency,
            eligible,
            lat_ok,
            used,
            age,
            stale,
            acc_ch,
            reading_idx,
        )
