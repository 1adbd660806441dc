"""Poison flood: 45,000 hypothesis-generated hostile requests (tests/support/poison_families.py)
interleaved 1:1 with valid traffic through a real worker: it never crashes, each bad one is
dead-lettered once with a reason, and valid throughput under the flood is at least half of
the valid throughput without it (both measured
in the same run, the same way: three calm and three storm phases alternating, each a
pre-published backlog drained by a fresh worker; the assertion is on valid decisions per worker
CPU-second, the wall-clock rates are printed)."""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from support.poison_families import FAMILIES, flood

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
from streams.app.catalog import load_catalog
from streams.config import Settings

N_BAD = env_flag("GAR_FAULTS_POISON", 45_000)
N_VALID = env_flag("GAR_FAULTS_POISON_VALID", 45_000)  # calm, and again in the storms
PAIRS = 3  # calm + storm phases: 15,000 valid each (shorter phases gave noisy rates)


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Drain:
    """Valid decisions, wall seconds and worker CPU seconds between 10% and 100% of a phase's
    valid ids decided (skips start-up and the group join)."""

    decided: int
    wall_s: float
    cpu_s: float


def _drain(
    loop: asyncio.AbstractEventLoop,
    settings: Settings,
    reader: TopicReader,
    ids: set[str],
    total: int,
    tmp: Path,
    name: str,
) -> Drain:
    """A fresh worker drains a pre-published backlog; stopped afterwards."""
    worker = start_worker(settings, tmp / f"{name}.log")

    async def run() -> Drain:
        t_start = cpu_start = 0.0
        n_start = -1
        drained: Drain | None = None
        deadline = time.monotonic() + 180.0
        while time.monotonic() < deadline:
            await reader.poll(20)
            done = len(ids & reader.decided_ids)
            if n_start < 0 and done >= len(ids) // 10:
                t_start, n_start = time.monotonic(), done
                cpu_start = _cpu_s(worker.proc.pid)
            if drained is None and done >= len(ids):
                # The clocks stop when the last valid request is decided, not when the reader
                # has also seen every dead letter: the idle worker's CPU while the reader
                # catches up made the calm phases' rate swing 2x between runs.
                drained = Drain(
                    done - n_start, time.monotonic() - t_start, _cpu_s(worker.proc.pid) - cpu_start
                )
            if drained is not None and len(reader.accounted) >= total:
                return drained
            assert alive(worker), worker.log()[-3000:]
        raise AssertionError(f"{name}: {len(ids & reader.decided_ids)}/{len(ids)} decided")

    try:
        result = loop.run_until_complete(run())
        assert alive(worker), worker.log()[-3000:]
    finally:
        worker.stop()
    return result


@pytest.mark.integration
@pytest.mark.faults
def test_poison_flood_is_dead_lettered_and_valid_throughput_holds(
    settings_factory: Any, tmp_path: Path
) -> None:
    # The packaged catalog (10 models x 5 regions), not the 2x2 test one: the ratio depends on
    # what a decision costs relative to a rejection, so it is measured at production cost.
    settings = settings_factory(topics={"partitions": 2})
    models = load_catalog(settings).model_names
    create_topics(settings, models)
    lay = layout(settings, models)
    normal = valid_items(N_VALID, tenants=7, prefix="calm", client_region="europe")
    valid = valid_items(N_VALID, tenants=7, prefix="storm", client_region="europe")
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
    loop = asyncio.new_event_loop()  # one loop for the reader that spans every phase
    reader = TopicReader(settings, [lay.decisions, lay.dead_letter], lay)
    calm: list[Drain] = []
    storm: list[Drain] = []
    positions: set[tuple[int, int]] = set()
    per_v, per_m = len(normal) // PAIRS, len(mixed) // PAIRS
    bad_pos: dict[tuple[int, int], str] = {}
    try:
        # calm, storm, calm, storm, ...: alternating cancels the drift of the machine's other
        # load.
        for phase in range(2 * PAIRS):
            part = phase // 2
            if phase % 2 == 0:
                items = normal[part * per_v : (part + 1) * per_v]
                fams: list[str | None] = [None] * len(items)
            else:
                items = mixed[part * per_m : (part + 1) * per_m]
                fams = family_of[part * per_m : (part + 1) * per_m]
            pos = produce(settings, lay.requests, items)
            positions |= set(pos)
            bad_pos.update({p: f for p, f in zip(pos, fams, strict=True) if f is not None})
            if phase == 0:
                loop.run_until_complete(reader.start())
            ids = {
                orjson.loads(v)["request_id"]
                for (_, v), f in zip(items, fams, strict=True)
                if f is None
            }
            (storm if phase % 2 else calm).append(
                _drain(loop, settings, reader, ids, len(positions), tmp_path, f"phase{phase}")
            )
    finally:
        loop.run_until_complete(reader.stop())
        loop.close()
    acc = account(reader, lay)
    outcome = acc.outcomes()
    assert set(outcome) == positions
    assert max(outcome.values()) == 1
    assert set(acc.dead) == set(bad_pos), "a bad message was routed or a valid one rejected"
    # Workers are stopped (SIGTERM) between phases; dead letters are at-least-once (a re-read
    # input is dead-lettered again, identical but for rejected_at_ms). Counted, not hidden.
    dup_dead = acc.dead_letter_records - len(acc.dead)
    assert all(len({(d["reason"], d["original_b64"]) for d in v}) == 1 for v in acc.dead.values())
    wrong = [
        (bad_pos[p], v[0]["reason"])
        for p, v in acc.dead.items()
        if v[0]["reason"] not in FAMILIES[bad_pos[p]][1]
    ]
    assert not wrong, Counter(wrong).most_common(10)
    assert all(v[0]["stage"] and v[0]["message"] for v in acc.dead.values())
    calm_ids = {f"calm-{i:06d}" for i in range(N_VALID)}
    storm_ids = {f"storm-{i:06d}" for i in range(N_VALID)}
    assert {d["request_id"] for d in acc.decisions} == calm_ids | storm_ids
    assert acc.decision_records == 2 * N_VALID
    n_calm, n_storm = sum(d.decided for d in calm), sum(d.decided for d in storm)
    rate_normal = n_calm / sum(d.wall_s for d in calm)
    rate_flood = n_storm / sum(d.wall_s for d in storm)
    cpu_normal = n_calm / sum(d.cpu_s for d in calm)
    cpu_flood = n_storm / sum(d.cpu_s for d in storm)
    ratio, cpu_ratio = rate_flood / rate_normal, cpu_flood / cpu_normal
    print(
        f"\npoison flood: bad={len(bad_pos)} valid={2 * N_VALID} "
        f"valid_rate_normal={rate_normal:.0f}/s valid_rate_flood={rate_flood:.0f}/s "
        f"wall_ratio={ratio:.2f} valid_per_worker_cpu_s normal={cpu_normal:.0f} "
        f"flood={cpu_flood:.0f} cpu_ratio={cpu_ratio:.2f} duplicate_dead_letters={dup_dead} "
        f"reasons={dict(Counter(v[0]['reason'] for v in acc.dead.values()))}"
    )
    # The target, per worker CPU-second: on this shared 2-core machine (broker, test reader and
    # other jobs on the same cores) the wall-clock ratio swings with the other load; CPU per
    # valid decision is what the flood takes from the worker (docs/reliability.md).
    pairs = [
        round((s.decided / s.cpu_s) / (c.decided / c.cpu_s), 2)
        for c, s in zip(calm, storm, strict=True)
    ]
    print(f"cpu_ratio per calm/storm pair: {pairs}")
    assert cpu_ratio >= float(os.environ.get("GAR_FAULTS_FLOOD_RATIO", "0.5")), cpu_ratio
