"""Run one worker process: build the app from Settings and hand it to Faust's Worker."""

from __future__ import annotations

import faust

from streams.app.app import create_app
from streams.config import Settings


def run_worker(settings: Settings, loglevel: str = "warning") -> None:
    router_app = create_app(settings)
    worker = faust.Worker(router_app.app, loglevel=loglevel, quiet=True)
    worker.execute_from_commandline()
