"""Run one worker process: build the app from Settings and hand it to Faust's Worker."""

from __future__ import annotations

import faust

from streams.app.app import create_app
from streams.config import Settings


def run_worker(settings: Settings, loglevel: str = "warning") -> None:
    # The app resets the root logger to this level after start (Faust leaves it at DEBUG).
    worker_cfg = settings.worker.model_copy(update={"log_level": loglevel})
    router_app = create_app(settings.model_copy(update={"worker": worker_cfg}))
    worker = faust.Worker(router_app.app, loglevel=loglevel, quiet=True)
    worker.execute_from_commandline()
