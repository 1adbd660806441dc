"""Unit tests of the tools' pure parts: poison variants, fleet model, pacing, feed merge, trace."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import replace

import orjson
import pytest
from support.realdata import correctness, real_catalog

from streams.app.catalog import load_catalog
from streams.config import Settings
from streams.core.inputs import Request
from streams.ingress import IngressContext, Rejected, parse_completion, parse_request
from streams.ingress.dispatch import DispatchOrder, parse_dispatch
from streams.schema import (
    completion_record,
    dispatch_record,
    encode,
    request_record,
    validation_errors,
)
from streams.tools.carbon_feed import FeedWindow, carbon_dir, merged_events
from streams.tools.fleet_model import FleetModel
from streams.tools.pacing import ReplayClock
from streams.tools.poison import VARIANTS, poison
from streams.tools.produce import default_trace_start_ms, trace_requests


@pytest.fixture(scope="module")
def trace() -> list[Request]:
    return trace_requests(Settings(), real_catalog(), 200, seed=3, run_id="unit", days=2.0)


def order_for(req: Request, model: str, region: str = "GB") -> DispatchOrder:
    cat = real_catalog()
    decision = {
        "model": model,
        "region": region,
        "candidate": cat.candidate_index(model, region),
        "policy": "gar-pd",
        "reason": "optimal",
    }
    rec = dispatch_record(req, decision)
    assert validation_errors("dispatch", rec) == []
    out = parse_dispatch(encode(rec), IngressContext.from_catalog(cat))
    assert isinstance(out, DispatchOrder), out
    return out


def test_trace_requests_are_valid_and_prefixed(trace: list[Request]) -> None:
    ctx = IngressContext.from_catalog(real_catalog())
    assert len(trace) == 200 and len({r.request_id for r in trace}) == 200
    for r in trace:
        assert r.request_id.startswith("unit-")
        assert parse_request(encode(request_record(r)), ctx) == r
    assert trace == trace_requests(Settings(), real_catalog(), 200, seed=3, run_id="unit", days=2.0)


def test_trace_requests_spread_over_the_tenants_asked_for(trace: list[Request]) -> None:
    assert {r.tenant for r in trace} == {"tenant-a", "tenant-b", "tenant-c"}
    many = trace_requests(Settings(), real_catalog(), 2000, seed=3, days=2.0, tenants=20)
    counts = Counter(r.tenant for r in many)
    assert set(counts) == {f"tenant-{i:02d}" for i in range(1, 21)}
    assert counts["tenant-01"] > counts["tenant-20"]  # Zipf shares: the first is the largest


def test_every_poison_variant_is_rejected_with_its_reason(trace: list[Request]) -> None:
    ctx = IngressContext.from_catalog(real_catalog())
    rng = random.Random(1)
    seen = set()
    for i in range(300):
        raw, reason = poison(request_record(trace[i % len(trace)]), rng)
        out = parse_request(raw, ctx)
        assert isinstance(out, Rejected) and out.reason == reason, (raw[:200], out)
        seen.add(reason)
    assert seen == {r for _, r in VARIANTS.values()}


def test_fleet_completion_is_deterministic_and_valid(trace: list[Request]) -> None:
    sim = FleetModel(real_catalog(), correctness())
    ctx = IngressContext.from_catalog(real_catalog())
    for req in trace[:50]:
        model = req.allow_models[0] if req.allow_models else real_catalog().model_names[0]
        order = order_for(req, model)
        done = sim.complete(order)
        assert done == sim.complete(order)
        rec = completion_record(done)
        assert validation_errors("completions", rec) == []
        assert parse_completion(encode(rec), ctx) == done
        assert done.ts_ms > req.ts_ms and done.latency_ms > 0 and (done.energy_j or 0) > 0


def test_fleet_correctness_comes_from_the_real_question(trace: list[Request]) -> None:
    data = correctness()
    sim = FleetModel(real_catalog(), data)
    for req in trace[:80]:
        q = sim.question(req.request_id, req.dataset)
        assert q is not None and data.datasets[data.dataset_idx[q]] == req.dataset
        for model in req.allow_models or ():
            done = sim.complete(order_for(req, model))
            assert done.correct == bool(data.correct[q, data.model_index(model)])


def test_fleet_falls_back_to_the_prior_without_data(trace: list[Request]) -> None:
    sim = FleetModel(real_catalog(), None)
    model = "Llama-3.1-70B-Instruct"
    prior = real_catalog().models[real_catalog().model_index[model]].prior_for("gsm8k").mean
    reqs = [replace(trace[0], request_id=f"p{i}", dataset="gsm8k") for i in range(400)]
    hits = sum(bool(sim.complete(order_for(r, model)).correct) for r in reqs)
    assert abs(hits / 400 - prior) < 0.08


def test_latency_and_energy_grow_with_output_tokens(trace: list[Request]) -> None:
    sim = FleetModel(real_catalog(), None)
    base = replace(trace[0], request_id="same", dataset="unknown-ds")
    short = sim.complete(order_for(replace(base, output_tokens_est=10), "Llama-3.1-70B-Instruct"))
    long = sim.complete(order_for(replace(base, output_tokens_est=2000), "Llama-3.1-70B-Instruct"))
    assert long.output_tokens > short.output_tokens
    assert long.latency_ms > short.latency_ms and (long.energy_j or 0) > (short.energy_j or 0)


def test_replay_clock_maps_event_time_to_wall_time() -> None:
    clock = ReplayClock(origin_ms=1_000_000, speedup=3600.0)
    # One event hour is one wall second.
    assert 0.9 < clock.wall_delay_s(1_000_000 + 3_600_000) <= 1.0
    assert clock.wall_delay_s(1_000_000 - 3_600_000) < 0


def test_merged_feed_is_in_event_time_order_within_the_window() -> None:
    start = 1_685_577_600_000  # 2023-06-01
    events = list(
        merged_events(
            carbon_dir(Settings()), ["GB", "DE-LU"], start_ms=start, end_ms=start + 6 * 3_600_000
        )
    )
    assert len(events) == 12
    assert [e["ts_ms"] for e in events] == sorted(e["ts_ms"] for e in events)
    assert {e["zone"] for e in events} == {"GB", "DE-LU"}
    with pytest.raises(KeyError):
        list(merged_events(carbon_dir(Settings()), ["ATLANTIS"]))


def test_a_feed_for_a_trace_leads_it_by_one_event_hour() -> None:
    t0 = 1_685_491_200_000  # 2023-05-31, the load generator's default start
    window = FeedWindow.for_trace(t0, hours=48)
    assert (window.first_ms, window.end_ms) == (t0 - 3_600_000, t0 + 48 * 3_600_000)
    feed, requests = ReplayClock(window.origin_ms, 1200.0), ReplayClock(t0, 1200.0)
    # Started together, each hour's reading is due before any request of that hour.
    for hour in range(48):
        reading_ms = t0 + hour * 3_600_000
        assert feed.wall_delay_s(reading_ms) < requests.wall_delay_s(reading_ms)
        lead_s = requests.wall_delay_s(reading_ms) - feed.wall_delay_s(reading_ms)
        assert lead_s == pytest.approx(3.0)  # one event hour at 1200x
    assert FeedWindow.for_trace(t0).end_ms is None


def test_the_feed_starts_where_the_load_generator_does() -> None:
    settings = Settings()
    catalog = load_catalog(settings)  # the packaged catalog both commands use by default
    start = default_trace_start_ms(settings, catalog)
    assert start == 1_685_491_200_000  # day 150 of the 2023 data: 2023-05-31T00:00Z
    first = trace_requests(settings, catalog, 50, run_id="x")[0]
    assert start <= first.ts_ms < start + 24 * 3_600_000


def test_dispatch_parser_rejects_garbage() -> None:
    out = parse_dispatch(orjson.dumps({"schema_version": 1}))
    assert isinstance(out, Rejected)
