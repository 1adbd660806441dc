"""Poison flood: hypothesis-generated hostile requests, first against the parser (every family
gets one of its reason codes), then 10,000 of them interleaved with valid traffic through a
real worker: it never crashes, each bad one is dead-lettered once with a reason, and valid
throughput under the flood stays above half of the valid throughput without it (both measured in
the same run, the same way: a pre-published backlog drained by a fresh worker; the assertion is
on valid decisions per worker CPU-second, the wall-clock rates are printed)."""

from __future__ import annotations

from pathlib import Path

import pytest
from faults.helpers import (
    env_flag,
)
from hypothesis import given, settings
from support.poison_families import ACCEPTED, FAMILIES

from streams.app.catalog import load_catalog
from streams.config import Settings
from streams.ingress.context import IngressContext
from streams.ingress.rejected import Rejected
from streams.ingress.requests import parse_request


def _ingress(catalog_path: Path) -> IngressContext:
    return IngressContext.from_catalog(
        load_catalog(Settings(worker={"catalog_path": str(catalog_path)}))
    )  # type: ignore[arg-type]


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


N_BAD = env_flag("GAR_FAULTS_POISON", 20_000)
N_VALID = env_flag("GAR_FAULTS_POISON_VALID", 20_000)  # per phase (short phases: noisy rates)
