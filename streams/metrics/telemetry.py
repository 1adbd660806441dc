"""Completion telemetry -> metrics, once per batch: realised vs estimated CO2, SLO violations,
correctness, and the estimator error per candidate.

Estimator error compares what the router prices with against what this batch of telemetry
shows, per candidate:

* accuracy (per model x dataset): the estimator's posterior mean vs the batch's graded share;
* p95 latency: the router's p95 (the windowed sketch, or the catalog prior
  ``PRIOR_P95_FACTOR * (ttft + itl * output tokens)`` until the sketch has enough samples) vs
  the batch's own p95 (only with at least ``MIN_P95_SAMPLES`` completions);
* energy per token: the catalog prediction scaled by the estimator's online correction vs
  measured energy, both divided by the same completions' tokens.

Realised CO2 is measured energy x the zone's latest intensity x PUE; the estimate next to it
is the catalog's predicted energy for the same tokens, priced the same way.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from streams.core import Catalog, Completion, EstimatorSnapshot, EstimatorState, IntensityView
from streams.core.context import J_PER_KWH
from streams.core.estimators import PRIOR_P95_FACTOR
from streams.metrics.measurements import (
    AccuracySample,
    CandidateSample,
    CompletionSample,
    Metrics,
)

MIN_P95_SAMPLES = 20


def record_completions(
    metrics: Metrics,
    completions: Sequence[Completion],
    catalog: Catalog,
    intensity: IntensityView,
    *,
    slo_latency_ms: float,
    estimators: EstimatorState | None = None,
    ts_ms: int | None = None,
) -> None:
    if metrics.writer is None or not completions:
        return
    snap = estimators.snapshot() if estimators is not None else None
    samples: list[CompletionSample] = []
    for c in completions:
        co2_realised_g: float | None = None
        co2_est_g: float | None = None
        k = _index(catalog, c)
        # A deployment not in this catalog is counted plainly (no zone, so no CO2).
        if k is not None:
            ri = int(catalog.cand_region_idx[k])
            reading = intensity.latest(catalog.regions[ri].zone)
            if reading is not None:
                g_per_j = reading.intensity_g_per_kwh * float(catalog.pue[ri]) / J_PER_KWH
                co2_est_g = _predicted_j(catalog, k, c, snap) * g_per_j
                if c.energy_j is not None:
                    co2_realised_g = c.energy_j * g_per_j
        samples.append(
            CompletionSample(
                c.tenant,
                c.model,
                c.region,
                c.latency_ms,
                co2_realised_g=co2_realised_g,
                co2_est_g=co2_est_g,
                energy_j=c.energy_j,
                correct=c.correct,
                slo_latency_ms=slo_latency_ms,
                dataset=c.dataset,
            )
        )
    metrics.completions(samples, ts_ms)
    cands, accs = estimator_samples(catalog, completions, snap)
    metrics.candidates(cands, ts_ms)
    metrics.accuracy(accs, ts_ms)


def estimator_samples(
    catalog: Catalog, completions: Sequence[Completion], snap: EstimatorSnapshot | None
) -> tuple[list[CandidateSample], list[AccuracySample]]:
    """Estimator error of one completion batch (``snap=None``: the catalog's priors)."""
    per_k: dict[int, list[Completion]] = defaultdict(list)
    for c in completions:
        k = _index(catalog, c)
        if k is not None:
            per_k[k].append(c)
    return (
        [_candidate(catalog, k, cs, snap) for k, cs in per_k.items()],
        _accuracy(catalog, completions, snap),
    )


def _index(catalog: Catalog, c: Completion) -> int | None:
    try:
        return catalog.candidate_index(c.model, c.region)
    except Exception:
        return None


def _predicted_j(catalog: Catalog, k: int, c: Completion, snap: EstimatorSnapshot | None) -> float:
    spec = catalog.models[int(catalog.cand_model_idx[k])]
    raw = (
        spec.prefill_energy_j
        + spec.energy_per_input_token_j * c.input_tokens
        + spec.energy_per_output_token_j * c.output_tokens
    )
    return raw * (float(snap.energy_scale[k]) if snap is not None else 1.0)


def _candidate(
    catalog: Catalog, k: int, cs: list[Completion], snap: EstimatorSnapshot | None
) -> CandidateSample:
    model, region = catalog.deployments[k]
    spec = catalog.models[int(catalog.cand_model_idx[k])]
    lat = np.asarray([c.latency_ms for c in cs])
    out_tok = float(np.mean([c.output_tokens for c in cs]))
    p95 = getattr(snap, "latency_p95_ms", None)
    est_p95 = (
        float(p95[k])
        if p95 is not None and np.isfinite(p95[k])
        else (PRIOR_P95_FACTOR * (spec.ttft_ms + spec.itl_ms * out_tok))
    )
    metered = [c for c in cs if c.energy_j is not None]
    tokens = sum(c.input_tokens + c.output_tokens for c in metered)
    pred_j = sum(_predicted_j(catalog, k, c, snap) for c in metered)
    meas_j = sum(c.energy_j or 0.0 for c in metered)
    all_tokens = sum(c.input_tokens + c.output_tokens for c in cs)
    est_per_token = (
        sum(_predicted_j(catalog, k, c, snap) for c in cs) / all_tokens if all_tokens else 0.0
    )
    return CandidateSample(
        model,
        region,
        latency_p95_est_ms=est_p95,
        latency_p95_obs_ms=float(np.percentile(lat, 95)) if len(lat) >= MIN_P95_SAMPLES else None,
        energy_est_j_per_token=pred_j / tokens if tokens else est_per_token,
        energy_obs_j_per_token=meas_j / tokens if tokens else None,
        n_obs=len(cs),
    )


def _accuracy(
    catalog: Catalog, completions: Sequence[Completion], snap: EstimatorSnapshot | None
) -> list[AccuracySample]:
    graded: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for c in completions:
        if c.correct is not None and c.model in catalog.model_index:
            g = graded[(c.model, c.dataset)]
            g[0] += int(c.correct)
            g[1] += 1
    mean = snap.acc_mean if snap is not None else None
    out = []
    for (model, dataset), (ok, n) in graded.items():
        mi, di = catalog.model_index[model], catalog.dataset_idx(dataset)
        est = (
            float(mean[mi, di]) if mean is not None else catalog.models[mi].prior_for(dataset).mean
        )
        out.append(AccuracySample(model, dataset, est, ok / n, n))
    return out
