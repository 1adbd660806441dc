"""Another tenant's clock cannot undo deduplication (real broker, a worker kill in between).

A tenant's requests are decided, another tenant sends one valid request stamped two hours
ahead, then the first tenant's byte-identical retries arrive, before and after a SIGKILL and
restart of the worker. Every retry must be suppressed: the dedupe window is measured in
arrival (log-append) time, which no producer controls.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from faults.helpers import (
    T0_MS,
    account,
    alive,
    create_topics,
    layout,
    produce,
    read_until,
    request,
    start_worker,
)
from streams.config import Settings

pytestmark = [pytest.mark.integration, pytest.mark.faults]

N = 20
HOUR_MS = 3_600_000


def test_a_future_dated_request_of_one_tenant_does_not_evict_another_tenants_ids(
    settings_factory: Any, catalog_path: Path, tmp_path: Path
) -> None:
    settings: Settings = settings_factory(
        topics={"partitions": 1},
        worker={"catalog_path": str(catalog_path), "dedupe_window_ms": HOUR_MS},
    )
    create_topics(settings)
    lay = layout(settings)
    victim = [(b"victim", request(i, "victim", T0_MS + i * 1_000, prefix="v")) for i in range(N)]
    ahead = [(b"mallory", request(0, "mallory", T0_MS + 2 * HOUR_MS, prefix="m"))]

    def sentinel(i: int) -> list[tuple[bytes | None, bytes]]:
        return [(b"victim", request(i, "victim", T0_MS + N * 1_000, prefix="s"))]

    def decided_until(request_id: str, worker: Any) -> list[dict[str, Any]]:
        reader = read_until(
            settings,
            [lay.decisions, lay.dead_letter],
            lambda r: request_id in r.decided_ids or not alive(worker),
            60.0,
            lay,
        )
        assert alive(worker), worker.log()[-3000:]
        return account(reader, lay).decisions

    worker = start_worker(settings, tmp_path / "worker.log")
    try:
        produce(settings, lay.requests, victim)
        produce(settings, lay.requests, ahead)
        decided_until("m-000000", worker)
        # Retries, then a new request: once the new one is decided, the retries were read.
        produce(settings, lay.requests, victim + sentinel(1))
        before_kill = decided_until("s-000001", worker)
        time.sleep(1.0)  # let a checkpoint land after the last batch
        worker.kill()
        worker = start_worker(settings, tmp_path / "worker2.log")
        produce(settings, lay.requests, victim + sentinel(2))
        decided_until("s-000002", worker)
        time.sleep(2.0)  # anything decided twice would show up by now
        after = decided_until("s-000002", worker)
    finally:
        worker.stop()
    mine = [d for d in after if d["tenant"] == "victim"]
    ids = [d["request_id"] for d in mine]
    assert len([d for d in before_kill if d["tenant"] == "victim"]) == N + 1
    assert len(ids) == len(set(ids)) == N + 2, sorted(ids)
    assert sorted(d["tenant_seq"] for d in mine) == list(range(1, N + 3))
    print(f"\ndedupe clock: {len(mine)} victim decisions for {N} requests + 2 new, retries 2x{N}")
