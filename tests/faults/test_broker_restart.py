"""The broker goes away and comes back (PRIVATE broker, persistent log dir; the shared one is
never touched): the worker reconnects by itself and continues; nothing is lost or decided twice.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from support.audit import audited_decisions

from faults.helpers import (
    TopicReader,
    account,
    alive,
    create_topics,
    layout,
    produce,
    read_until,
    start_worker,
    tenant_log_report,
    valid_items,
)
from streams.core.replay import check_chain
from streams.devenv import KafkaBroker

pytestmark = [pytest.mark.integration, pytest.mark.faults]

N_BEFORE, N_DURING, N_AFTER = 3_000, 1_000, 1_000


def test_worker_survives_broker_stop_and_crash(
    private_broker: KafkaBroker, settings_factory: Any, catalog_path: Path, tmp_path: Path
) -> None:
    settings = settings_factory(
        kafka={"bootstrap_servers": private_broker.bootstrap_servers},
        topics={"partitions": 4},
        worker={"catalog_path": str(catalog_path), "batch_max": 200},
    )
    create_topics(settings)
    lay = layout(settings)
    outputs = [lay.decisions, lay.dead_letter, *lay.dispatch.values()]
    first = valid_items(N_BEFORE, tenants=7)
    second = valid_items(N_DURING, tenants=7, start=N_BEFORE)
    third = valid_items(N_AFTER, tenants=7, start=N_BEFORE + N_DURING)
    worker = start_worker(settings, tmp_path / "w.log")
    try:
        positions = produce(settings, lay.requests, first)
        seen = read_until(settings, outputs, lambda r: len(r.accounted) >= N_BEFORE // 5, lay=lay)
        accounted_at_stop = len(seen.accounted)
        # 1. Graceful broker stop mid-stream, down for a few seconds, started again.
        assert private_broker.stop()
        time.sleep(5.0)
        assert alive(worker), worker.log()[-3000:]
        private_broker.start()
        positions += produce(settings, lay.requests, second)
        read_until(
            settings, outputs, lambda r: len(r.accounted) >= N_BEFORE + N_DURING, 120.0, lay=lay
        )
        # 2. Broker crash (SIGKILL, log recovery on start) while the worker is idle-connected.
        assert private_broker.kill()
        time.sleep(3.0)
        private_broker.start()
        positions += produce(settings, lay.requests, third)
        total = N_BEFORE + N_DURING + N_AFTER

        def done(r: TopicReader) -> bool:
            return len(r.accounted) >= total and r.dispatched_ids >= r.decided_ids

        reader = read_until(settings, outputs, done, 180.0, lay=lay)
        assert alive(worker), worker.log()[-3000:]
    finally:
        worker.stop()
    log = worker.log()
    assert "Connect call failed" in log  # the worker did lose the broker (and got it back)
    acc = account(reader, lay)
    assert 0 < accounted_at_stop < N_BEFORE, "the stop did not happen mid-stream"
    assert set(acc.outcomes()) == set(positions), worker.log()[-3000:]
    assert not acc.dead, [d["reason"] for v in acc.dead.values() for d in v]
    assert len({d["request_id"] for d in acc.decisions}) == total
    assert acc.decision_records == total, "a request was decided twice"
    breaks = check_chain(acc.decisions)  # log order: tenant chains and pooled mu scopes
    if breaks:
        # Known bug, open (README, Known gaps): on some clean-clone CI runs, where this test
        # runs first on freshly started services, a tenant's decision records are out of
        # decision order in the log; every other assertion holds. The report goes into the
        # xfail reason, which CI prints (-ra), until the cause is found.
        pytest.xfail(
            f"known bug: {len(breaks)} chain breaks, first {breaks[0]}; "
            + tenant_log_report(reader, lay, breaks[0].split(":")[0])
            + "\nworker: "
            + " | ".join(
                line[-160:]
                for line in log.splitlines()
                if any(k in line for k in ("after checkpoint", "partitions [", "Traceback"))
            )[-2000:]
        )
    # Contexts written before their decisions, across the broker's restart: all re-derive.
    assert len(audited_decisions(settings)) == total
    dispatched = {m.key for t in lay.dispatch.values() for m in reader.records[t]}
    assert len(dispatched) == total
    n_dispatch = sum(len(reader.records[t]) for t in lay.dispatch.values())
    print(
        f"\nbroker restart: requests={total} accounted_at_stop={accounted_at_stop} "
        f"decision_records={acc.decision_records} dispatch_records={n_dispatch} "
        f"produce_retries_logged={log.count('Got error produce response')} "
        f"client_error_lines={log.count('[ERROR]')}"
    )
