"""Which catalog the worker routes over: ``GAR_WORKER__CATALOG_PATH`` or the packaged default."""

from __future__ import annotations

from pathlib import Path

from streams.config import PACKAGE_DIR, Settings
from streams.core.catalog import Catalog

DEFAULT_CATALOG_PATH = PACKAGE_DIR / "resources" / "catalog.json"


def catalog_path(settings: Settings) -> Path:
    return settings.worker.catalog_path or DEFAULT_CATALOG_PATH


def load_catalog(settings: Settings) -> Catalog:
    return Catalog.load(catalog_path(settings))
