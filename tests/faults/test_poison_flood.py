"""Poison flood: hypothesis-generated hostile requests, first against the parser (every family
gets one of its reason codes), then 10,000 of them interleaved with valid traffic through a
real worker: it never crashes, each bad one is dead-lettered once with a reason, and valid
throughput under the flood stays above half of the valid throughput without it (both measured in
the same run, the same way: a pre-published backlog drained by a fresh worker)."""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings

from faults.helpers import (
    TopicReader,
    account,
    alive,
    create_topics,
    env_flag,
    layout,
    produce,
    start_worker,
    valid_items,
)
from faults.poison_families import ACCEPTED, FAMILIES, flood
from streams.app.catalog import load_catalog
from streams.config import Settings
from streams.ingress.context import IngressContext
from streams.ingress.rejected import Rejected
from streams.ingress.requests import parse_request


def _ingress(catalog_path: Path) -> IngressContext:
    return IngressContext.from_catalog(load_catalog(Settings(
        worker={"catalog_path": str(catalog_path)})))  # type: ignore[arg-type]


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_every_family_is_rejected_with_its_reason(family: str, catalog_path: Path) -> None:
    strategy, reasons = FAMILIES[family]
    ctx = _ingress(catalog_path)

    @settings(max_examples=150, deadline=None, database=None)
    @given(strategy)
    def check(raw: bytes) -> None:
        out = parse_request(raw, ctx)
        assert isinstance(out, Rejected), raw[:200]
        assert str(out.reason) in reasons, (out.reason, out.message, raw[:200])

    check()


@pytest.mark.parametrize("family", sorted(ACCEPTED))
def test_hostile_but_valid_inputs_are_routed(family: str, catalog_path: Path) -> None:
    ctx = _ingress(catalog_path)

    @settings(max_examples=100, deadline=None, database=None)
    @given(ACCEPTED[family])
    def check(raw: bytes) -> None:
        assert not isinstance(parse_request(raw, ctx), Rejected)

    check()


N_BAD = env_flag("GAR_FAULTS_POISON", 10_000)
N_VALID = env_flag("GAR_FAULTS_POISON_VALID", 10_000)  # per phase


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _drain_rate(loop: asyncio.AbstractEventLoop, settings: Settings, reader: TopicReader,
                ids: set[str], total: int, tmp: Path, name: str) -> tuple[float, float, Any]:
    """Start a worker on a pre-published backlog; valid decisions per wall second and per worker
    CPU second between 10% and 100% of ``ids`` decided (skips start-up and group join)."""
    worker = start_worker(settings, tmp / f"{name}.log")

    async def run() -> tuple[float, float]:
        t_start = None
        n_start = 0
        cpu_start = 0.0
        deadline = time.monotonic() + 180.0
        while time.monotonic() < deadline:
            await reader.poll(100)
            done = len(ids & reader.decided_ids)
            if t_start is None and done >= len(ids) // 10:
                t_start, n_start = time.monotonic(), done
                cpu_start = _cpu_s(worker.proc.pid)
            if done >= len(ids) and len(reader.accounted) >= total:
                assert t_start is not None
                wall = max(time.monotonic() - t_start, 1e-3)
                cpu = max(_cpu_s(worker.proc.pid) - cpu_start, 1e-3)
                return (done - n_start) / wall, (done - n_start) / cpu
            assert alive(worker), worker.log()[-3000:]
        raise AssertionError(f"{name}: {len(ids & reader.decided_ids)}/{len(ids)} decided")

    try:
        wall_rate, cpu_rate = loop.run_until_complete(run())
    except BaseException:
        worker.kill()
        raise
    return wall_rate, cpu_rate, worker


@pytest.mark.integration
@pytest.mark.faults
def test_poison_flood_is_dead_lettered_and_valid_throughput_holds(
    settings_factory: Any, catalog_path: Path, tmp_path: Path
) -> None:
    settings = settings_factory(topics={"partitions": 2},
                                worker={"catalog_path": str(catalog_path)})
    create_topics(settings)
    lay = layout(settings)
    normal = valid_items(N_VALID, tenants=7, prefix="calm")
    valid = valid_items(N_VALID, tenants=7, prefix="storm")
    bad = flood(N_BAD, per_family=200)
    # Interleave: one bad message after each valid one until both run out (bad keyed like
    # traffic, spread over the partitions).
    mixed: list[tuple[bytes | None, bytes]] = []
    family_of: list[str | None] = []
    for i in range(max(len(valid), len(bad))):
        if i < len(valid):
            mixed.append(valid[i])
            family_of.append(None)
        if i < len(bad):
            mixed.append((f"tenant-{i % 7}".encode(), bad[i][1]))
            family_of.append(bad[i][0])
    loop = asyncio.new_event_loop()  # one loop for the reader that spans both phases
    reader = TopicReader(settings, [lay.decisions, lay.dead_letter], lay)
    try:
        # Phase 1: normal traffic only.
        pos_normal = produce(settings, lay.requests, normal)
        loop.run_until_complete(reader.start())
        calm_ids = {f"calm-{i:06d}" for i in range(N_VALID)}
        rate_normal, cpu_normal, w1 = _drain_rate(loop, settings, reader, calm_ids,
                                                  len(normal), tmp_path, "calm")
        w1.stop()
        # Phase 2: the same amount of valid traffic with the flood interleaved.
        pos_mixed = produce(settings, lay.requests, mixed)
        storm_ids = {f"storm-{i:06d}" for i in range(N_VALID)}
        rate_flood, cpu_flood, w2 = _drain_rate(loop, settings, reader, storm_ids,
                                                len(normal) + len(mixed), tmp_path, "storm")
        alive_at_end = alive(w2)
        w2.stop()
    finally:
        loop.run_until_complete(reader.stop())
        loop.close()
    assert alive_at_end
    acc = account(reader, lay)
    outcome = acc.outcomes()
    assert set(outcome) == set(pos_normal) | set(pos_mixed)
    assert max(outcome.values()) == 1
    bad_pos = {p: fam for p, fam in zip(pos_mixed, family_of, strict=True) if fam is not None}
    assert set(acc.dead) == set(bad_pos), "a bad message was routed or a valid one rejected"
    assert all(len(v) == 1 for v in acc.dead.values())  # clean run: no re-delivery
    wrong = [(bad_pos[p], v[0]["reason"]) for p, v in acc.dead.items()
             if v[0]["reason"] not in FAMILIES[bad_pos[p]][1]]
    assert not wrong, Counter(wrong).most_common(10)
    assert all(v[0]["stage"] and v[0]["message"] for v in acc.dead.values())
    assert {d["request_id"] for d in acc.decisions} == calm_ids | storm_ids
    assert acc.decision_records == 2 * N_VALID
    ratio = rate_flood / rate_normal
    print(f"\npoison flood: bad={len(bad_pos)} valid={2 * N_VALID} "
          f"valid_rate_normal={rate_normal:.0f}/s valid_rate_flood={rate_flood:.0f}/s "
          f"ratio={ratio:.2f} valid_per_worker_cpu_s normal={cpu_normal:.0f} "
          f"flood={cpu_flood:.0f} cpu_ratio={cpu_flood / cpu_normal:.2f} "
          f"reasons={dict(Counter(v[0]['reason'] for v in acc.dead.values()))}")
    assert ratio > 0.5
