"""Faust's web server on any free port: ``worker.web_port = 0``.

Faust's ``web_port`` setting refuses 0, and replicas that share one host's network (compose
with host networking, several workers on one machine) cannot share a fixed port. This driver
binds port 0 so the kernel picks a free port and holds it, then writes the port to
``<data_dir>/web-port`` for ``gar probe``. A fixed port uses Faust's own driver unchanged.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import faust
from aiohttp.web import BaseSite, TCPSite
from faust.web.drivers import aiohttp as faust_aiohttp

log = logging.getLogger(__name__)


class AnyPortWeb(faust_aiohttp.Web):
    bound_port: int | None = None

    def _new_transport_tcp(self) -> BaseSite:
        conf = self.app.conf
        return TCPSite(self._runner, conf.web_bind, 0, ssl_context=conf.web_ssl_context)

    async def start_server(self) -> None:
        await super().start_server()
        for address in self._runner.addresses:
            if isinstance(address, tuple) and len(address) >= 2:
                self.bound_port = int(address[1])
                break
        port_file: Path | None = getattr(self.app, "web_port_file", None)
        if self.bound_port is None or port_file is None:
            log.warning("web server: no bound TCP port found; probes cannot find it")
            return
        tmp = port_file.with_suffix(".tmp")
        tmp.write_text(f"{self.bound_port}\n")
        tmp.replace(port_file)  # a probe never reads a half-written file
        log.info("web server on %s:%d", self.app.conf.web_bind, self.bound_port)


class AnyPortApp(faust.App):
    """A Faust app whose web server binds a free port and publishes it to ``web_port_file``."""

    def __init__(self, *args: Any, web_port_file: Path, **kwargs: Any) -> None:
        self.web_port_file = web_port_file
        # A file left by an earlier process could name another worker's port by now.
        web_port_file.unlink(missing_ok=True)
        super().__init__(*args, **kwargs)

    def _new_web(self) -> faust_aiohttp.Web:
        return AnyPortWeb(self)
