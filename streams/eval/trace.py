"""Build the evaluation request trace from the real correctness data.

Arrivals: a non-homogeneous Poisson process conditioned on ``n_requests`` arrivals, which is
exactly ``n_requests`` i.i.d. draws from the normalised intensity. The intensity is the sum
over client regions of ``weight x diurnal(local hour) x weekday(local day)`` with
``diurnal(h) = 1 + amplitude x cos(2 pi (h - peak_hour) / 24)``.

Questions are drawn uniformly (with replacement) from the *evaluation half* of the questions
(the calibration half fed the catalog priors), so each dataset's share of the traffic is its
share of the questions; ``dataset_shares`` fixes some datasets' shares instead (the rest is
split as before, in proportion to question counts) and draws uniformly within each dataset.
Tenants: three (50/30/20%) by default; ``zipf_tenants(n, s)`` gives n tenants with shares
proportional to 1 / rank^s. A request may only go to models that have a
recorded answer for its dataset (``allow_models``): the ground truth of any other model is
unknown, and inventing it would make the evaluation meaningless.

Variability is drawn once per request (common random numbers), so every policy faces the same
luck: standard normals for TTFT, ITL and energy, and an exponential RTT jitter.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import numpy.typing as npt

from streams.core import Catalog, Request
from streams.data.catalog_builder import calibration_mask, filled_output_tokens
from streams.data.correctness import CorrectnessData
from streams.data.regions import CLIENT_SITES, DEFAULT_CLIENT_WEIGHTS

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS

# Typical prompt lengths (tokens, incl. a short instruction); the correctness files do not
# carry the prompts. Drawn lognormally around these medians with sigma 0.35.
DEFAULT_INPUT_TOKENS: dict[str, float] = {
    "gsm8k": 130.0,
    "arc-challenge": 110.0,
    "winogrande": 60.0,
    "mbpp": 160.0,
}
FALLBACK_INPUT_TOKENS = 120.0
INPUT_TOKENS_SIGMA = 0.35
DEFAULT_TENANTS: dict[str, float] = {"tenant-a": 0.5, "tenant-b": 0.3, "tenant-c": 0.2}


@dataclass(frozen=True)
class TraceOptions:
    n_requests: int = 10_000
    start_ms: int = 0
    days: float = 7.0
    seed: int = 0
    diurnal_amplitude: float = 0.6
    peak_hour_local: float = 15.0
    weekend_factor: float = 0.75
    client_weights: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_CLIENT_WEIGHTS))
    tenants: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_TENANTS))
    datasets: tuple[str, ...] | None = None
    use_calibration_half: bool = False
    dataset_shares: dict[str, float] | None = None
    """Fraction of all requests per named dataset (the others share the rest in proportion
    to their question counts); None: questions uniformly, as the shares of the questions."""


@dataclass(frozen=True)
class RequestTruth:
    """What the world knows about one request and the system does not (until completion)."""

    question_row: int
    query_id: str
    correct_by_model: dict[str, bool]
    output_tokens_by_model: dict[str, int]


@dataclass(frozen=True)
class Trace:
    """Requests plus, per request and catalog model, the ground truth and the shared noise."""

    requests: list[Request]
    ts_ms: npt.NDArray[np.int64]
    dataset_names: tuple[str, ...]
    dataset_idx: npt.NDArray[np.int64]
    client_idx: npt.NDArray[np.int64]
    tenant_idx: npt.NDArray[np.int64]
    tenants: tuple[str, ...]
    client_regions: tuple[str, ...]
    question_row: npt.NDArray[np.int64]
    query_ids: tuple[str, ...]
    input_tokens: npt.NDArray[np.int64]
    models: tuple[str, ...]
    correct: npt.NDArray[np.int8]
    """(N, M) in catalog model order; -1 where the model has no answer (not allowed)."""
    output_tokens: npt.NDArray[np.int64]
    """(N, M) real answer length in tokens of that model on that question."""
    z_ttft: npt.NDArray[np.float64]
    z_itl: npt.NDArray[np.float64]
    z_energy: npt.NDArray[np.float64]
    rtt_jitter: npt.NDArray[np.float64]
    options: TraceOptions

    def __len__(self) -> int:
        return len(self.requests)

    @cached_property
    def _index(self) -> dict[str, int]:
        return {r.request_id: i for i, r in enumerate(self.requests)}

    def index_of(self, request_id: str) -> int:
        """Row of a request id (KeyError if the trace has no such request)."""
        return self._index[request_id]

    def truth(self, i: int) -> RequestTruth:
        allowed = self.correct[i] >= 0
        return RequestTruth(
            question_row=int(self.question_row[i]),
            query_id=self.query_ids[i],
            correct_by_model={
                m: bool(self.correct[i, j]) for j, m in enumerate(self.models) if allowed[j]
            },
            output_tokens_by_model={
                m: int(self.output_tokens[i, j]) for j, m in enumerate(self.models) if allowed[j]
            },
        )

    def items(self) -> Iterator[tuple[Request, RequestTruth]]:
        for i, request in enumerate(self.requests):
            yield request, self.truth(i)

    def describe(self) -> dict[str, Any]:
        o = self.options
        return {
            "n_requests": len(self),
            "start_ms": o.start_ms,
            "days": o.days,
            "seed": o.seed,
            "diurnal_amplitude": o.diurnal_amplitude,
            "peak_hour_local": o.peak_hour_local,
            "weekend_factor": o.weekend_factor,
            "client_weights": o.client_weights,
            "tenants": o.tenants,
            "questions_from": "calibration half" if o.use_calibration_half else "evaluation half",
            "dataset_shares": o.dataset_shares,
            "requests_per_dataset": {
                d: int(np.sum(self.dataset_idx == i)) for i, d in enumerate(self.dataset_names)
            },
            "input_tokens_median": DEFAULT_INPUT_TOKENS,
        }


def _arrivals(
    opts: TraceOptions, rng: np.random.Generator
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    clients = list(opts.client_weights)
    unknown = [c for c in clients if c not in CLIENT_SITES]
    if unknown:
        raise KeyError(f"unknown client region(s) {unknown}; known: {sorted(CLIENT_SITES)}")
    n_hours = max(1, int(np.ceil(opts.days * 24)))
    hour_start = opts.start_ms + np.arange(n_hours, dtype=np.int64) * HOUR_MS
    rates = np.empty((n_hours, len(clients)))
    for c, name in enumerate(clients):
        local_h = (hour_start / HOUR_MS + CLIENT_SITES[name].utc_offset_h) % (24 * 7 * 1000)
        hour_of_day = local_h % 24 + 0.5
        weekday = (np.floor(local_h / 24).astype(np.int64) + 3) % 7  # 1970-01-01 was a Thursday
        diurnal = 1.0 + opts.diurnal_amplitude * np.cos(
            2 * np.pi * (hour_of_day - opts.peak_hour_local) / 24
        )
        weekend = np.where(weekday >= 5, opts.weekend_factor, 1.0)
        rates[:, c] = opts.client_weights[name] * np.maximum(diurnal, 0.0) * weekend
    last = opts.days * 24 - (n_hours - 1)  # the final hour may be partial
    rates[-1] *= last
    p = rates.ravel() / rates.sum()
    cells = rng.choice(p.size, size=opts.n_requests, p=p)
    hours, client = np.divmod(cells, len(clients))
    width = np.where(hours == n_hours - 1, last, 1.0) * HOUR_MS
    ts = hour_start[hours] + np.floor(rng.random(opts.n_requests) * width).astype(np.int64)
    order = np.argsort(ts, kind="stable")
    return ts[order], client[order].astype(np.int64)


def zipf_tenants(n: int, exponent: float = 1.0) -> dict[str, float]:
    """``n`` tenants ``tenant-01`` ... with shares proportional to 1 / rank^exponent."""
    if n < 1:
        raise ValueError("the number of tenants must be >= 1")
    if exponent < 0:
        raise ValueError("the tenant skew exponent must be >= 0")
    weights = np.arange(1, n + 1, dtype=np.float64) ** -exponent
    width = len(str(n))
    return {
        f"tenant-{r + 1:0{max(width, 2)}d}": float(w) for r, w in enumerate(weights / weights.sum())
    }


def dataset_probabilities(
    names: Sequence[str], counts: Sequence[int], shares: dict[str, float]
) -> npt.NDArray[np.float64]:
    """Per dataset (``names``, with ``counts`` questions each) the probability of a request:
    named datasets get their share, the others split the rest by question count. With every
    dataset named, the shares are normalised."""
    unknown = sorted(set(shares) - set(names))
    if unknown:
        raise ValueError(f"dataset share(s) for {unknown}: the trace has {sorted(names)}")
    if any(not 0.0 <= v <= 1.0 for v in shares.values()):
        raise ValueError(f"dataset shares must be in [0, 1], got {shares}")
    named = np.array([n in shares for n in names])
    p = np.array([shares.get(n, 0.0) for n in names], dtype=np.float64)
    cnt = np.asarray(counts, dtype=np.float64)
    rest = 1.0 - p.sum()
    if named.all():
        if p.sum() <= 0:
            raise ValueError("dataset shares must not all be 0")
        out: npt.NDArray[np.float64] = p / p.sum()
        return out
    if rest < -1e-9:
        raise ValueError(f"dataset shares sum to {p.sum():g} > 1 with other datasets left")
    p[~named] = max(rest, 0.0) * cnt[~named] / cnt[~named].sum()
    normalised: npt.NDArray[np.float64] = p / p.sum()
    return normalised


def _rows_by_share(
    dataset_names: Sequence[str],
    pool_dataset: npt.NDArray[np.integer[Any]],
    pool: npt.NDArray[np.int64],
    shares: dict[str, float],
    n: int,
    rng: np.random.Generator,
) -> npt.NDArray[np.int64]:
    """Question rows: a dataset per request by its probability, then a question uniformly."""
    present = np.unique(pool_dataset)
    names = [dataset_names[d] for d in present]
    counts = [int(np.sum(pool_dataset == d)) for d in present]
    p = dataset_probabilities(names, counts, shares)
    pick = rng.choice(present.size, size=n, p=p)
    rows = np.empty(n, dtype=np.int64)
    for j, d in enumerate(present.tolist()):
        sel = np.flatnonzero(pick == j)
        members = pool[pool_dataset == d]
        rows[sel] = members[rng.integers(0, members.size, size=sel.size)]
    return rows


def build_trace(
    data: CorrectnessData,
    catalog: Catalog,
    opts: TraceOptions | None = None,
) -> Trace:
    """A reproducible request trace (same options and seed -> the same trace)."""
    opts = opts or TraceOptions()
    if opts.n_requests <= 0:
        raise ValueError("n_requests must be > 0")
    rng = np.random.default_rng(opts.seed)
    models = catalog.model_names
    unknown = [m for m in models if m not in data.models]
    if unknown:
        raise KeyError(f"catalog model(s) {unknown} are not in the correctness data")
    col = np.array([data.model_index(m) for m in models], dtype=np.int64)
    half = calibration_mask(data)
    pool_mask = half if opts.use_calibration_half else ~half
    wanted = opts.datasets or tuple(
        d
        for d in data.datasets
        if (data.correct[data.dataset_idx == data.datasets.index(d)][:, col] >= 0).any()
    )
    ds_ok = np.isin(data.dataset_idx, [data.datasets.index(d) for d in wanted])
    pool = np.flatnonzero(pool_mask & ds_ok & (data.correct[:, col] >= 0).any(axis=1))
    if pool.size == 0:
        raise ValueError(f"no questions for datasets {wanted} answered by the catalog models")

    ts, client = _arrivals(opts, rng)
    n = opts.n_requests
    if opts.dataset_shares is None:
        rows = pool[rng.integers(0, pool.size, size=n)]
    else:
        rows = _rows_by_share(
            data.datasets, data.dataset_idx[pool], pool, opts.dataset_shares, n, rng
        )
    tenant_names = tuple(opts.tenants)
    tw = np.array([opts.tenants[t] for t in tenant_names], dtype=np.float64)
    tenant = rng.choice(len(tenant_names), size=n, p=tw / tw.sum()).astype(np.int64)
    ds_idx = data.dataset_idx[rows].astype(np.int64)
    medians = np.array([DEFAULT_INPUT_TOKENS.get(d, FALLBACK_INPUT_TOKENS) for d in data.datasets])
    input_tokens = np.maximum(
        1, np.round(medians[ds_idx] * np.exp(INPUT_TOKENS_SIGMA * rng.standard_normal(n)))
    ).astype(np.int64)
    z_ttft, z_itl, z_energy = rng.standard_normal((3, n))
    rtt_jitter = rng.exponential(0.05, size=n)

    correct = data.correct[np.ix_(rows, col)]
    out_tokens = np.round(filled_output_tokens(data)[np.ix_(rows, col)]).astype(np.int64)
    clients = tuple(opts.client_weights)
    requests = []
    for i in range(n):
        allowed = tuple(m for j, m in enumerate(models) if correct[i, j] >= 0)
        requests.append(
            Request(
                request_id=f"r{opts.seed}-{i:07d}",
                tenant=tenant_names[tenant[i]],
                dataset=data.datasets[ds_idx[i]],
                input_tokens=int(input_tokens[i]),
                output_tokens_est=None,
                client_region=clients[client[i]],
                ts_ms=int(ts[i]),
                allow_models=allowed,
            )
        )
    return Trace(
        requests=requests,
        ts_ms=ts,
        dataset_names=data.datasets,
        dataset_idx=ds_idx,
        client_idx=client,
        tenant_idx=tenant,
        tenants=tenant_names,
        client_regions=clients,
        question_row=rows.astype(np.int64),
        query_ids=tuple(data.query_ids[r] for r in rows.tolist()),
        input_tokens=input_tokens,
        models=models,
        correct=correct,
        output_tokens=out_tokens,
        z_ttft=z_ttft,
        z_itl=z_itl,
        z_energy=z_energy,
        rtt_jitter=rtt_jitter,
        options=opts,
    )


def default_start_ms(
    zone_starts_ms: Sequence[int], zone_ends_ms: Sequence[int], days: float
) -> int:
    """Start of the default period: day 150 of the carbon data (early June for a calendar year)
    when the data covers it, else the first common hour."""
    start = max(zone_starts_ms)
    end = min(zone_ends_ms) + HOUR_MS
    candidate = start + 150 * DAY_MS
    return candidate if candidate + int(days * DAY_MS) <= end else start
