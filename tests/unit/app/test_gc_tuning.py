"""The worker's collector settings (streams/app/gc_tuning.py)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from streams.app.gc_tuning import freeze_survivors, raise_young_threshold


@pytest.fixture
def restore_gc() -> Iterator[None]:
    before = gc.get_threshold()
    yield
    gc.set_threshold(*before)
    gc.unfreeze()


def test_young_threshold_raised_older_kept(restore_gc: None) -> None:
    _, gen1, gen2 = gc.get_threshold()
    raise_young_threshold(12_345)
    assert gc.get_threshold() == (12_345, gen1, gen2)


def test_zero_keeps_the_threshold(restore_gc: None) -> None:
    before = gc.get_threshold()
    raise_young_threshold(0)
    assert gc.get_threshold() == before


def test_freeze_moves_survivors_out_of_the_scanned_generations(restore_gc: None) -> None:
    survivor = [{"k": i} for i in range(1_000)]
    frozen = freeze_survivors()
    assert frozen == gc.get_freeze_count() >= len(survivor)
    # A collection now scans only what was allocated after the freeze.
    assert sum(gc.get_count()) < frozen
    assert not any(obj is survivor for obj in gc.get_objects())
