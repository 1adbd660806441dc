"""Decision records made by the real core (until the app emits them), for audit tests.

Two tenants, two datasets, a budget tight enough that lambda moves, intensity that changes
between batches (so the routing context is rebuilt, as the app does), published to a test
topic keyed by tenant like the router's decisions topic.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import orjson

from streams.config import Settings
from streams.core import (
    Catalog,
    Decision,
    IntensityReading,
    IntensityView,
    PolicyConfig,
    Request,
    RoutingContext,
    TenantState,
    get_policy,
)

CATALOG: dict[str, Any] = {
    "format": "gar-catalog/1",
    "version": "ops-test-1",
    "models": [
        {
            "name": name,
            "params_b": params,
            "energy_per_input_token_j": e_in,
            "energy_per_output_token_j": e_out,
            "prefill_energy_j": pre,
            "ttft_ms": ttft,
            "itl_ms": itl,
            "default_output_tokens": {"gsm8k": 200.0, "mbpp": 160.0},
            "correctness_prior": {
                "gsm8k": {"mean": acc_g, "strength": 200.0},
                "mbpp": {"mean": acc_m, "strength": 200.0},
            },
        }
        for name, params, e_in, e_out, pre, ttft, itl, acc_g, acc_m in (
            ("small-8b", 8.0, 0.02, 0.25, 1.0, 80.0, 10.0, 0.80, 0.50),
            ("mid-27b", 27.0, 0.05, 0.60, 2.0, 150.0, 18.0, 0.88, 0.62),
            ("large-70b", 70.0, 0.12, 1.50, 5.0, 300.0, 30.0, 0.94, 0.70),
        )
    ],
    "regions": [
        {"name": "eu-north", "zone": "SE", "pue": 1.1, "rtt_ms": {"eu": 30.0, "us": 120.0}},
        {"name": "us-east", "zone": "US-MIDA-PJM", "pue": 1.3, "rtt_ms": {"eu": 90.0, "us": 20.0}},
    ],
}
TENANTS = ("acme", "globex")
T0_MS = 1_700_000_000_000


@dataclass(frozen=True)
class Run:
    catalog: Catalog
    config: PolicyConfig
    requests: list[Request]
    records: list[dict[str, Any]]
    decisions: list[Decision]


def policy_config() -> PolicyConfig:
    return PolicyConfig(
        version="ops-test-v1",
        budgets_g={"acme": 0.05, "globex": 5.0},
        latency_slo_ms=8_000.0,
    )


def make_run(policy: str = "gar-pd", batches: int = 6, per_batch: int = 20) -> Run:
    catalog = Catalog.from_dict(CATALOG)
    config = policy_config()
    pol = get_policy(policy)
    states: dict[str, TenantState] = {}
    requests: list[Request] = []
    records: list[dict[str, Any]] = []
    made: list[Decision] = []
    for b in range(batches):
        ts = T0_MS + b * 60_000
        view = IntensityView.from_readings(
            [
                IntensityReading("SE", 20.0 + 5 * b, ts - 1_000, "test", source_offset=2 * b),
                IntensityReading(
                    "US-MIDA-PJM", 420.0 - 30 * b, ts - 1_000, "test", source_offset=2 * b + 1
                ),
            ]
        )
        ctx = RoutingContext.build(catalog, config, None, view)
        batch = [
            Request(
                request_id=f"r{b}-{i}",
                tenant=TENANTS[i % 2],
                dataset=("gsm8k", "mbpp")[(i // 2) % 2],
                input_tokens=100 + 10 * i,
                output_tokens_est=None,
                client_region=("eu", "us")[i % 2],
                ts_ms=ts + i,
            )
            for i in range(per_batch)
        ]
        new_states, decisions = pol.decide_batch(ctx, states, batch)
        states.update(new_states)
        made.extend(decisions)
        for j, d in enumerate(decisions):
            rec = d.to_record()
            rec["schema_version"] = 1
            rec["request_source"] = {
                "topic": "requests",
                "partition": 0,
                "offset": len(requests) + j,
            }
            records.append(rec)
        requests.extend(batch)
    return Run(catalog, config, requests, records, made)


MAC_KEY = b"decision-run-test-key-0123"


@dataclass(frozen=True)
class RunV2:
    """decisions.v2 as the router writes them: (tenant, value bytes) in log order per tenant
    partition, and the context records (digest, value bytes) written before them."""

    catalog: Catalog
    config: PolicyConfig
    decisions: list[tuple[str, bytes]]
    contexts: list[tuple[str, bytes]]
    made: list[Decision]


def make_run_v2(
    policy: str = "gar-pd",
    batches: int = 6,
    per_batch: int = 20,
    signers: dict[int, tuple[str, bytes]] | None = None,
    config: PolicyConfig | None = None,
) -> RunV2:
    """Like ``make_run``, encoded by the worker's ``DecisionEncoder`` (MAC chain per tenant)
    under one context record per batch. ``signers``: batch -> (key id, key) from that batch on
    (default: ("k1", MAC_KEY) throughout)."""
    from dataclasses import replace

    from streams.app.record_bytes import DecisionEncoder
    from streams.app.router import RawMessage
    from streams.core.context_inputs import ContextInputs
    from streams.schema.contexts import catalog_digest, context_bytes
    from streams.schema.decision_mac import DecisionSigner

    catalog = Catalog.from_dict(CATALOG)
    config = config or policy_config()
    pol = get_policy(policy)
    keys = signers or {0: ("k1", MAC_KEY)}
    signer = None
    states: dict[str, TenantState] = {}
    decisions: list[tuple[str, bytes]] = []
    contexts: list[tuple[str, bytes]] = []
    made: list[Decision] = []
    offsets = dict.fromkeys(TENANTS, 0)
    for b in range(batches):
        if b in keys:
            signer = DecisionSigner(*keys[b])
        ts = T0_MS + b * 60_000
        view = IntensityView.from_readings(
            [
                IntensityReading("SE", 20.0 + 5 * b, ts - 1_000, "test", source_offset=2 * b),
                IntensityReading(
                    "US-MIDA-PJM", 420.0 - 30 * b, ts - 1_000, "test", source_offset=2 * b + 1
                ),
            ]
        )
        ctx = RoutingContext.build(catalog, config, None, view)
        digest, value = context_bytes(ContextInputs.of(ctx, policy, -1), catalog_digest(catalog))
        contexts.append((digest, value))
        batch = [
            Request(
                request_id=f"r{b}-{i}",
                tenant=TENANTS[i % 2],
                dataset=("gsm8k", "mbpp")[(i // 2) % 2],
                input_tokens=100 + 10 * i,
                output_tokens_est=None,
                client_region=("eu", "us")[i % 2],
                ts_ms=ts + i,
            )
            for i in range(per_batch)
        ]
        new_states, decided = pol.decide_batch(ctx, states, batch)
        encoder = DecisionEncoder(digest, signer, states)
        for d in decided:
            req = d.shared.est.requests[d.row]
            src = RawMessage(
                "requests", TENANTS.index(req.tenant), offsets[req.tenant], None, None, None
            )
            offsets[req.tenant] += 1
            decisions.append((req.tenant, encoder.encode(d, req, src)[1]))
        states.update(
            {t: replace(st, chain=encoder.heads.get(t, st.chain)) for t, st in new_states.items()}
        )
        made.extend(decided)
    return RunV2(catalog, config, decisions, contexts, made)


async def _publish(
    settings: Settings, topic: str, records: list[dict[str, Any]], event_time: bool
) -> list[tuple[int, int]]:
    from aiokafka import AIOKafkaProducer
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    from streams.kafka.clients import client_kwargs

    admin = AIOKafkaAdminClient(**client_kwargs(settings.kafka))
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(**client_kwargs(settings.kafka), acks="all")
    await producer.start()
    try:
        futures = [
            await producer.send(
                topic,
                orjson.dumps(rec),
                key=str(rec["tenant"]).encode(),
                timestamp_ms=int(rec["ts_ms"]) if event_time else None,
            )
            for rec in records
        ]
        metas = [await f for f in futures]
    finally:
        await producer.stop()
    return [(m.partition, m.offset) for m in metas]


def publish(
    settings: Settings, topic: str, records: list[dict[str, Any]], event_time: bool = True
) -> list[tuple[int, int]]:
    """Publish keyed by tenant (as the router does); returns each record's (partition, offset).
    ``event_time``: Kafka timestamp = the record's ts_ms (as the router does), else now."""
    return asyncio.run(_publish(settings, topic, records, event_time))
