"""A representative set of metrics, written through the real typed API (not through mocks).

Ten one-minute ticks ending two minutes ago, two tenants, three candidates, two datasets, two
zones, two dead-letter reasons, a request-to-decision latency histogram.
"""

from __future__ import annotations

from streams.metrics import (
    AccuracySample,
    BudgetSample,
    CandidateSample,
    CompletionSample,
    DatasetDecisions,
    DecisionSample,
    DualSample,
    IntensitySample,
    LagSample,
    Metrics,
)

TENANTS = ("acme", "globex")
DATASETS = ("gsm8k", "mbpp")
CANDIDATES = (("llama-8b", "eu-north"), ("llama-70b", "eu-north"), ("llama-70b", "us-east"))
TICKS = 10
TICK_MS = 60_000


def write_sample_run(m: Metrics, end_ms: int) -> int:
    """Write the run; returns the first tick's timestamp."""
    start_ms = end_ms - 120_000 - TICKS * TICK_MS
    for tick in range(TICKS):
        ts = start_ms + tick * TICK_MS
        decisions = []
        completions = []
        for t_i, tenant in enumerate(TENANTS):
            for c_i, (model, region) in enumerate(CANDIDATES):
                n = 5 + tick + 3 * c_i + t_i
                co2 = 0.2 * (1 + c_i) * (1 + 0.1 * tick)
                reason = "optimal" if c_i < 2 else "fallback_least_violation"
                for _ in range(n):
                    decisions.append(
                        DecisionSample(
                            tenant,
                            model,
                            region,
                            reason,
                            "gar-pd",
                            co2,
                            0.8 + 0.05 * c_i,
                            200.0 + 100 * c_i,
                            2.0,
                        )
                    )
                    completions.append(
                        CompletionSample(
                            tenant,
                            model,
                            region,
                            180.0 + 120 * c_i,
                            co2 * 1.1,
                            co2,
                            300.0 * (1 + c_i),
                            tick % 3 != 0,
                            slo_latency_ms=350.0,
                            dataset=DATASETS[c_i % 2],
                        )
                    )
        m.decisions(decisions, ts)
        m.dataset_decisions(
            [
                DatasetDecisions(d, 10 + tick, (10 + tick) * 0.8, 0.7 + 0.05 * i)
                for i, d in enumerate(DATASETS)
            ],
            ts,
        )
        m.policy(350.0, 3600.0, ts)
        m.decision_latency(
            [0, 1, 3, 8, 20, 40, 45, 46, 46, 46, 46, 46, 46, 46, 46], 900.0, 180.0, ts
        )
        m.completions(completions, ts)
        m.budgets(
            [
                BudgetSample(t, 10.0 * (tick + 1) * (1 + i), 150.0, 3600.0)
                for i, t in enumerate(TENANTS)
            ],
            ts,
        )
        m.duals(
            [
                DualSample(
                    t, 0.05 * tick * (1 + i), 0.01 * tick, {"gsm8k": 0.1 * tick, "mbpp": 0.2}
                )
                for i, t in enumerate(TENANTS)
            ],
            ts,
        )
        m.accuracy(
            [
                AccuracySample(model, "gsm8k", 0.8 + 0.05 * i, 0.78 + 0.05 * i, 10 * tick)
                for i, (model, _) in enumerate(CANDIDATES[:2])
            ],
            ts,
        )
        m.candidates(
            [
                CandidateSample(
                    model,
                    region,
                    250.0 + 100 * i,
                    240.0 + 90 * i + tick,
                    0.3 * (1 + i),
                    0.32 * (1 + i),
                    10 * tick,
                )
                for i, (model, region) in enumerate(CANDIDATES)
            ],
            ts,
        )
        m.intensity(
            [
                IntensitySample(
                    "SE", 30.0 + tick, 60.0 * (tick % 4), "electricitymaps", "average", False, False
                ),
                IntensitySample(
                    "US-MIDA-PJM", 400.0 - tick, 300.0, "electricitymaps", "average", True, tick > 7
                ),
            ],
            ts,
        )
        m.dead_letters({("invalid_json", "parse"): 1 + tick % 2, ("too_large", "ingress"): 1}, ts)
        m.consumer_lag(
            [LagSample("gar.requests", p, "gar-router", 100 * p + tick) for p in range(2)]
            + [LagSample("gar.completions", 0, "gar-router", tick, 2 * tick)],
            ts,
        )
        m.throughput("route", len(decisions), 0.05, ts)
        m.throughput("telemetry", len(completions), 0.02, ts)
        m.event_loop(2.0 + tick, 0.3, 100, ts)
    return start_ms
