"""Run one worker process: build the app from Settings and hand it to Faust's Worker."""

from __future__ import annotations

import logging
from typing import Any

import faust

from streams.app.app import create_app
from streams.app.gc_tuning import freeze_survivors, raise_young_threshold
from streams.config import Settings

log = logging.getLogger(__name__)


def run_worker(settings: Settings, loglevel: str = "warning") -> None:
    # The app resets the root logger to this level after start (Faust leaves it at DEBUG).
    worker_cfg = settings.worker.model_copy(update={"log_level": loglevel})
    router_app = create_app(settings.model_copy(update={"worker": worker_cfg}))
    raise_young_threshold(worker_cfg.gc_gen0_threshold)
    if worker_cfg.gc_freeze_after_recovery:

        @router_app.app.on_rebalance_complete.connect  # type: ignore[misc,arg-type]
        async def freeze_after_recovery(sender: Any, **kwargs: Any) -> None:
            # Tables are recovered by now: what is alive lives until the next rebalance.
            log.info("gc: %d objects frozen after recovery", freeze_survivors())

        _ = freeze_after_recovery
    worker = faust.Worker(router_app.app, loglevel=loglevel, quiet=True)
    worker.execute_from_commandline()
