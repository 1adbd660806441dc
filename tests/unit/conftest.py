"""Fixtures for the edges tests: a small catalog, an ingress context and valid records."""

from __future__ import annotations

import pytest
from support.samples import CATALOG

from streams.core.catalog import Catalog
from streams.ingress.context import IngressContext


@pytest.fixture(scope="session")
def catalog() -> Catalog:
    return Catalog.from_dict(CATALOG)


@pytest.fixture(scope="session")
def ctx(catalog: Catalog) -> IngressContext:
    return IngressContext.from_catalog(catalog)
