"""Online estimators fed by completion telemetry (cheap, no extra inference).

* Correctness p(m, d): Beta-Bernoulli per (model, dataset). Prior from the catalog; the state
  only keeps *observed* successes/failures so per-partition states merge by adding counts.
  LCB = mean - z * sqrt(mean (1 - mean) / (n + 1)) with n = alpha + beta (normal approximation
  of the Beta quantile, clipped to [0, 1]).
* Output tokens per (model, dataset): shrunk mean, (n0 * catalog default + sum) / (n0 + n).
* Energy per token per candidate: the catalog's J/token times a ratio-of-sums correction
  (W0 + sum measured J) / (W0 + sum predicted J) over completions that report energy, where W0
  is ``ENERGY_PRIOR_REQUESTS`` reference requests' worth of predicted energy (shrinkage).
* p95 latency per candidate: windowed DDSketch (see ``latency.py``) of the raw serving latency
  (reported) and of the *slowness factor* latency / (TTFT + ITL x output tokens) of the
  catalog model (routed on): a request's p95 is the factor's p95 x (TTFT + ITL x its own
  estimated output tokens), so a candidate that served long answers does not look slow for
  short ones. The factor is read at each of ``LATENCY_QUANTILES``; the policy config picks
  one (``latency_quantile``). Below ``LATENCY_MIN_COUNT`` samples the factor is
  ``PRIOR_P95_FACTOR``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from streams.core.catalog import Catalog, FloatArray
from streams.core.errors import StateError, TelemetryError
from streams.core.inputs import Completion
from streams.core.latency import WindowedSketch
from streams.core.policy_config import LATENCY_QUANTILES

OUTPUT_PRIOR_COUNT = 10.0
ENERGY_PRIOR_REQUESTS = 10.0
REFERENCE_INPUT_TOKENS = 512.0
LATENCY_MIN_COUNT = 20
PRIOR_P95_FACTOR = 1.25
DEFAULT_WINDOW_MS = 300_000
DEFAULT_N_WINDOWS = 12
P95 = 0.95


def beta_lcb(mean: FloatArray, n: FloatArray, z: float) -> FloatArray:
    """mean - z * sqrt(mean (1 - mean) / (n + 1)), clipped to [0, 1]."""
    out: FloatArray = np.clip(mean - z * np.sqrt(mean * (1.0 - mean) / (n + 1.0)), 0.0, 1.0)
    return out


def bernoulli_kl(p: FloatArray, q: FloatArray) -> FloatArray:
    """KL(Bernoulli(p) || Bernoulli(q)), elementwise, with 0 log 0 = 0."""
    eps = 1e-12
    p = np.clip(p, 0.0, 1.0)
    q = np.clip(q, eps, 1.0 - eps)
    with np.errstate(divide="ignore", invalid="ignore"):
        t1 = np.where(p > 0.0, p * np.log(p / q), 0.0)
        t2 = np.where(p < 1.0, (1.0 - p) * np.log((1.0 - p) / (1.0 - q)), 0.0)
    out: FloatArray = t1 + t2
    return out


KL_UCB_ITERATIONS = 30


def kl_ucb(mean: FloatArray, n: FloatArray, threshold: FloatArray) -> FloatArray:
    """The largest q in [mean, 1] with n x KL(mean || q) <= threshold (KL-UCB, Garivier and
    Cappe 2011), by bisection; elementwise over broadcast arrays. Bisection has a fixed
    iteration count, so the result is a pure function of its inputs (re-derivable)."""
    mean = np.clip(mean, 0.0, 1.0)
    budget = threshold / np.maximum(n, 1e-12)
    lo = mean.copy()
    hi = np.ones_like(mean)
    for _ in range(KL_UCB_ITERATIONS):
        mid = 0.5 * (lo + hi)
        ok = bernoulli_kl(mean, mid) <= budget
        lo = np.where(ok, mid, lo)
        hi = np.where(ok, hi, mid)
    return lo


def nominal_latency_ms(ttft_ms: float, itl_ms: float, output_tokens: float) -> float:
    """The catalog's serving latency for ``output_tokens`` (>= 1 ms): the slowness factor's
    denominator."""
    return max(ttft_ms + itl_ms * output_tokens, 1.0)


@dataclass(frozen=True, eq=False)
class EstimatorSnapshot:
    """Read-only arrays the routing context prices candidates with."""

    acc_mean: FloatArray  # (M, D)
    acc_lcb: FloatArray  # (M, D), for z = lcb_z of the snapshot
    lcb_z: float
    acc_n: FloatArray  # (M, D) posterior pseudo-count a + b (to recompute the LCB for any z)
    acc_obs: FloatArray  # (M, D) graded answers observed (without the prior's pseudo-counts)
    acc_obs_correct: FloatArray  # (M, D) of which correct
    acc_prior_mean: FloatArray  # (M, D) the catalog prior's mean (the benchmark's claim)
    out_tokens: FloatArray  # (M, D)
    energy_scale: FloatArray  # (K,)
    latency_p95_ms: FloatArray  # (K,), NaN where fewer than LATENCY_MIN_COUNT samples
    latency_factor_p95: FloatArray  # (K,) p95 of latency / (TTFT + ITL x out), NaN likewise
    latency_factor_q: FloatArray  # (len(LATENCY_QUANTILES), K) the factor at each quantile
    latency_count: FloatArray  # (K,)
    seq: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe: every array as nested lists (NaN as null when written as JSON); floats
        written shortest-round-trip read back to the same bits, so a context rebuilt from this
        prices requests exactly as the router did."""
        out: dict[str, Any] = {"seq": self.seq, "lcb_z": self.lcb_z}
        for name in SNAPSHOT_ARRAYS:
            out[name] = getattr(self, name).tolist()
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> EstimatorSnapshot:
        try:
            # dtype float64 turns JSON nulls (NaN written by orjson) back into NaN.
            arrays = {n: np.array(d[n], dtype=np.float64) for n in SNAPSHOT_ARRAYS}
            seq, lcb_z = int(d["seq"]), float(d["lcb_z"])
        except (KeyError, TypeError, ValueError) as e:
            raise StateError(f"bad estimator snapshot: {e!r}") from e
        for a in arrays.values():
            a.flags.writeable = False
        return cls(lcb_z=lcb_z, seq=seq, **arrays)


SNAPSHOT_ARRAYS = (
    "acc_mean",
    "acc_lcb",
    "acc_n",
    "acc_obs",
    "acc_obs_correct",
    "acc_prior_mean",
    "out_tokens",
    "energy_scale",
    "latency_p95_ms",
    "latency_factor_p95",
    "latency_factor_q",
    "latency_count",
)


class EstimatorState:
    """Mutable estimator accumulators bound to one catalog. ``observe`` is the hot path."""

    def __init__(
        self,
        catalog: Catalog,
        window_ms: int = DEFAULT_WINDOW_MS,
        n_windows: int = DEFAULT_N_WINDOWS,
    ) -> None:
        self.catalog = catalog
        m, d, k = len(catalog.models), len(catalog.datasets), catalog.n_candidates
        self.window_ms = window_ms
        self.n_windows = n_windows
        self.succ = np.zeros((m, d))
        self.fail = np.zeros((m, d))
        self.out_n = np.zeros((m, d))
        self.out_sum = np.zeros((m, d))
        self.energy_meas_j = np.zeros(k)
        self.energy_pred_j = np.zeros(k)
        self.latency = [WindowedSketch(window_ms, n_windows) for _ in range(k)]
        self.latency_factor = [WindowedSketch(window_ms, n_windows) for _ in range(k)]
        ttft = np.asarray([m.ttft_ms for m in catalog.models])[catalog.cand_model_idx]
        itl = np.asarray([m.itl_ms for m in catalog.models])[catalog.cand_model_idx]
        self._ttft_ms: list[float] = ttft.tolist()
        self._itl_ms: list[float] = itl.tolist()
        self.seq = 0
        self._cand = {dep: i for i, dep in enumerate(catalog.deployments)}
        prior_a = np.zeros((m, d))
        prior_b = np.zeros((m, d))
        out0 = np.zeros((m, d))
        for i, spec in enumerate(catalog.models):
            for j, ds in enumerate(catalog.datasets):
                p = spec.prior_for(ds)
                prior_a[i, j], prior_b[i, j] = p.alpha, p.beta
                out0[i, j] = spec.output_tokens_for(ds)
        self.prior_a, self.prior_b, self.out_prior = prior_a, prior_b, out0
        self._ref_energy_j = self._reference_energy_j()

    # --- telemetry -----------------------------------------------------------------------------
    def predicted_energy_j(self, k: int, input_tokens: float, output_tokens: float) -> float:
        spec = self.catalog.models[int(self.catalog.cand_model_idx[k])]
        return (
            spec.prefill_energy_j
            + spec.energy_per_input_token_j * input_tokens
            + spec.energy_per_output_token_j * output_tokens
        )

    def observe(self, c: Completion) -> None:
        """Fold one completion in. Unknown (model, region) raises ``TelemetryError``."""
        k = self._cand.get((c.model, c.region))
        if k is None:
            raise TelemetryError(f"completion for unknown deployment ({c.model}, {c.region})")
        mi = int(self.catalog.cand_model_idx[k])
        di = self.catalog.dataset_idx(c.dataset)
        if c.correct is not None:
            if c.correct:
                self.succ[mi, di] += 1.0
            else:
                self.fail[mi, di] += 1.0
        self.out_n[mi, di] += 1.0
        self.out_sum[mi, di] += c.output_tokens
        if c.energy_j is not None:
            self.energy_meas_j[k] += c.energy_j
            self.energy_pred_j[k] += self.predicted_energy_j(k, c.input_tokens, c.output_tokens)
        self.latency[k].add(c.ts_ms, c.latency_ms)
        self.latency_factor[k].add(
            c.ts_ms,
            c.latency_ms / nominal_latency_ms(self._ttft_ms[k], self._itl_ms[k], c.output_tokens),
        )
        self.seq += 1

    def merge(self, other: EstimatorState) -> EstimatorState:
        """New state = self + other (both built on the same catalog version)."""
        if other.catalog.version != self.catalog.version or (
            other.catalog.deployments != self.catalog.deployments
        ):
            raise StateError("cannot merge estimators built on different catalogs")
        out = self.copy()
        out.succ += other.succ
        out.fail += other.fail
        out.out_n += other.out_n
        out.out_sum += other.out_sum
        out.energy_meas_j += other.energy_meas_j
        out.energy_pred_j += other.energy_pred_j
        for mine, theirs in zip(
            out.latency + out.latency_factor, other.latency + other.latency_factor, strict=True
        ):
            mine.merge(theirs)
        out.seq += other.seq
        return out

    def copy(self) -> EstimatorState:
        return EstimatorState.from_dict(self.catalog, self.to_dict())

    # --- snapshot ------------------------------------------------------------------------------
    def _reference_energy_j(self) -> FloatArray:
        """(K,) predicted energy of a reference request per candidate (catalog constants)."""
        cat = self.catalog
        ref = np.empty(cat.n_candidates)
        for i in range(cat.n_candidates):
            spec = cat.models[int(cat.cand_model_idx[i])]
            ref[i] = self.predicted_energy_j(i, REFERENCE_INPUT_TOKENS, spec.output_tokens_for("*"))
        return ref

    def snapshot(self, lcb_z: float = 1.645) -> EstimatorSnapshot:
        cat = self.catalog
        a = self.prior_a + self.succ
        b = self.prior_b + self.fail
        n = a + b
        obs = self.succ + self.fail
        mean = np.divide(a, n, out=np.full_like(a, 0.5), where=n > 0)
        lcb = beta_lcb(mean, n, lcb_z)
        out_tok = (OUTPUT_PRIOR_COUNT * self.out_prior + self.out_sum) / (
            OUTPUT_PRIOR_COUNT + self.out_n
        )
        k = cat.n_candidates
        w0 = ENERGY_PRIOR_REQUESTS * self._ref_energy_j
        scale = (w0 + self.energy_meas_j) / (w0 + self.energy_pred_j)
        p95 = np.full(k, np.nan)
        fq = np.full((len(LATENCY_QUANTILES), k), np.nan)
        cnt = np.zeros(k)
        for i, (ws, wf) in enumerate(zip(self.latency, self.latency_factor, strict=True)):
            q, c = ws.quantile(P95)
            cnt[i] = c
            if q is not None and c >= LATENCY_MIN_COUNT:
                p95[i] = q
            qs, cf = wf.quantiles(LATENCY_QUANTILES)
            if cf >= LATENCY_MIN_COUNT:
                fq[:, i] = [np.nan if v is None else v for v in qs]
        f95 = fq[LATENCY_QUANTILES.index(P95)]
        arrays = (mean, lcb, n, obs, out_tok, scale, p95, f95, fq, cnt)
        for arr in arrays:
            arr.flags.writeable = False
        prior_n = self.prior_a + self.prior_b
        prior_mean = np.divide(
            self.prior_a, prior_n, out=np.full_like(self.prior_a, 0.5), where=prior_n > 0
        )
        correct = self.succ.copy()
        for arr in (correct, prior_mean):
            arr.flags.writeable = False
        return EstimatorSnapshot(
            mean,
            lcb,
            lcb_z,
            n,
            obs,
            correct,
            prior_mean,
            out_tok,
            scale,
            p95,
            f95,
            fq,
            cnt,
            self.seq,
        )

    # --- (de)serialisation -----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "catalog_version": self.catalog.version,
            "models": list(self.catalog.model_names),
            "datasets": list(self.catalog.datasets),
            "deployments": [list(d) for d in self.catalog.deployments],
            "window_ms": self.window_ms,
            "n_windows": self.n_windows,
            "seq": self.seq,
            "succ": self.succ.tolist(),
            "fail": self.fail.tolist(),
            "out_n": self.out_n.tolist(),
            "out_sum": self.out_sum.tolist(),
            "energy_meas_j": self.energy_meas_j.tolist(),
            "energy_pred_j": self.energy_pred_j.tolist(),
            "latency": [s.to_dict() for s in self.latency],
            "latency_factor": [s.to_dict() for s in self.latency_factor],
        }

    @classmethod
    def from_dict(cls, catalog: Catalog, d: Mapping[str, Any]) -> EstimatorState:
        """Rebuild on ``catalog``. Rows are matched by name, so a state saved under an older
        catalog keeps what still exists and drops what was removed."""
        try:
            st = cls(
                catalog,
                int(d.get("window_ms", DEFAULT_WINDOW_MS)),
                int(d.get("n_windows", DEFAULT_N_WINDOWS)),
            )
            models = [str(x) for x in d["models"]]
            datasets = [str(x) for x in d["datasets"]]
            deps = [(str(m), str(r)) for m, r in d["deployments"]]
            for name in ("succ", "fail", "out_n", "out_sum"):
                src = np.asarray(d[name], dtype=np.float64).reshape(len(models), len(datasets))
                dst = getattr(st, name)
                for i, mname in enumerate(models):
                    mi = catalog.model_index.get(mname)
                    if mi is None:
                        continue
                    for j, ds in enumerate(datasets):
                        dj = catalog.dataset_index.get(ds)
                        if dj is not None:
                            dst[mi, dj] = src[i, j]
            for j, dep in enumerate(deps):
                k = st._cand.get(dep)
                if k is None:
                    continue
                st.energy_meas_j[k] = float(d["energy_meas_j"][j])
                st.energy_pred_j[k] = float(d["energy_pred_j"][j])
                st.latency[k] = WindowedSketch.from_dict(
                    d["latency"][j], st.window_ms, st.n_windows
                )
                if "latency_factor" in d:  # absent in states saved before the factor existed
                    st.latency_factor[k] = WindowedSketch.from_dict(
                        d["latency_factor"][j], st.window_ms, st.n_windows
                    )
            st.seq = int(d.get("seq", 0))
        except (KeyError, TypeError, ValueError, IndexError) as e:
            raise StateError(f"bad estimator state: {e!r}") from e
        if (st.succ < 0).any() or (st.fail < 0).any() or not np.isfinite(st.out_sum).all():
            raise StateError("estimator counts must be finite and >= 0")
        return st
