"""Rebuild metrics from the audit log: decisions (and their completions) -> the metrics store.

For when the store was down (the writer drops rather than blocks) or a run never wrote
metrics. Records are grouped into event-time buckets and written through the same typed API
the router uses, stamped with the bucket's end and tagged ``worker=<tag>`` so a backfill never
mixes with a live worker's series.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

from streams.audit.reader import DecisionRow
from streams.core import Catalog, Completion
from streams.core.context import J_PER_KWH
from streams.metrics import CompletionSample, Metrics
from streams.metrics.decision_metrics import LargestBaseline, record_decision_batch
from streams.metrics.telemetry import estimator_samples


def backfill(
    metrics: Metrics,
    rows: list[DecisionRow],
    completions: list[DecisionRow],
    catalog: Catalog | None,
    *,
    dead_letters: list[DecisionRow] | None = None,
    bucket_ms: int = 60_000,
    budget_window_s: float = 0.0,
) -> int:
    """Write one batch of points per event-time bucket; returns the number of buckets."""
    baseline = LargestBaseline(catalog) if catalog is not None else None
    buckets: dict[int, list[dict[str, Any]]] = defaultdict(list)
    by_id: dict[str, dict[str, Any]] = {}
    for row in rows:
        rec = row.record
        if rec is not None and isinstance(rec.get("ts_ms"), int):
            buckets[rec["ts_ms"] // bucket_ms].append(rec)
            by_id[str(rec.get("request_id"))] = rec
    for b in sorted(buckets):
        record_decision_batch(
            metrics,
            buckets[b],
            baseline=baseline,
            budget_window_s=budget_window_s,
            ts_ms=(b + 1) * bucket_ms - 1,
        )
    done: dict[int, list[CompletionSample]] = defaultdict(list)
    typed: dict[int, list[Completion]] = defaultdict(list)
    seen: set[str] = set()
    for row in completions:
        c = row.record
        rid = str((c or {}).get("request_id"))
        dec = by_id.get(rid)
        if c is None or dec is None or rid in seen or not isinstance(c.get("ts_ms"), int):
            continue
        seen.add(rid)
        parsed = _completion(c)
        if parsed is not None:
            typed[c["ts_ms"] // bucket_ms].append(parsed)
        done[c["ts_ms"] // bucket_ms].append(_completion_sample(c, dec, catalog))
    for b in sorted(done):
        metrics.completions(done[b], (b + 1) * bucket_ms - 1)
        if catalog is not None and typed.get(b):
            # estimator error against the catalog's priors (the live snapshot is not recorded)
            cands, accs = estimator_samples(catalog, typed[b], None)
            metrics.candidates(cands, (b + 1) * bucket_ms - 1)
            metrics.accuracy(accs, (b + 1) * bucket_ms - 1)
    if by_id and dead_letters:
        lo, hi = min(buckets) * bucket_ms, (max(buckets) + 1) * bucket_ms
        counts = _dead_letter_counts(dead_letters, lo, hi, bucket_ms)
        for b in sorted(counts):
            metrics.dead_letters(counts[b], (b + 1) * bucket_ms - 1)
    return len(buckets)


def _completion(c: dict[str, Any]) -> Completion | None:
    try:
        return Completion(
            request_id=str(c["request_id"]),
            tenant=str(c["tenant"]),
            model=str(c["model"]),
            region=str(c["region"]),
            dataset=str(c.get("dataset", "*")),
            ts_ms=int(c["ts_ms"]),
            latency_ms=float(c["latency_ms"]),
            input_tokens=int(c["input_tokens"]),
            output_tokens=int(c["output_tokens"]),
            energy_j=c.get("energy_j"),
            correct=c.get("correct"),
        )
    except Exception:  # telemetry the router would have dead-lettered
        return None


def _completion_sample(
    c: dict[str, Any], dec: dict[str, Any], catalog: Catalog | None
) -> CompletionSample:
    """A completion as the worker would have measured it; realised CO2 at the intensity its
    decision recorded (the worker prices it at completion time, which is not recorded)."""
    energy = c.get("energy_j") if isinstance(c.get("energy_j"), int | float) else None
    realised = None
    zi = dec.get("intensity") or {}
    if (
        energy is not None
        and catalog is not None
        and isinstance(zi.get("intensity_g_per_kwh"), int | float)
    ):
        ri = catalog.region_index.get(str(dec.get("region")))
        if ri is not None:
            realised = energy / J_PER_KWH * zi["intensity_g_per_kwh"] * float(catalog.pue[ri])
    return CompletionSample(
        str(c.get("tenant")),
        str(c.get("model")),
        str(c.get("region")),
        float(c.get("latency_ms") or 0.0),
        co2_realised_g=realised,
        co2_est_g=float(dec.get("co2_g") or 0.0) if realised is not None else None,
        energy_j=energy,
        correct=c.get("correct") if isinstance(c.get("correct"), bool) else None,
        slo_latency_ms=float(dec.get("latency_cap_ms") or 0.0) or None,
        dataset=str(dec.get("dataset") or c.get("dataset") or ""),
    )


def _dead_letter_counts(
    dead_letters: list[DecisionRow], lo_ms: int, hi_ms: int, bucket_ms: int
) -> dict[int, Counter[tuple[str, str]]]:
    """(reason, stage) counts per bucket of the dead letters timed within [lo_ms, hi_ms)."""
    counts: dict[int, Counter[tuple[str, str]]] = defaultdict(Counter)
    for row in dead_letters:
        d = row.record or {}
        raw_src = d.get("source")
        src: dict[str, Any] = raw_src if isinstance(raw_src, dict) else {}
        ts = (
            src.get("timestamp_ms")
            if isinstance(src.get("timestamp_ms"), int)
            else (d.get("rejected_at_ms"))
        )
        if isinstance(ts, int) and lo_ms <= ts < hi_ms:
            counts[ts // bucket_ms][(str(d.get("reason")), str(d.get("stage")))] += 1
    return counts
