"""BatchRows' per-row column lists (the records' ``feasible`` / ``eligible`` lists)."""

from __future__ import annotations

import numpy as np
import pytest

from streams.core.decision import _row_cols


@pytest.mark.parametrize("k", [0, 1, 7, 8, 9, 50, 64, 65, 130])
def test_row_cols_match_flatnonzero_per_row(k: int) -> None:
    rng = np.random.default_rng(k)
    mask = rng.random((40, k)) < 0.5
    mask[5] = mask[3]  # repeated rows share one list
    mask[7] = False
    sets, of = _row_cols(mask)
    assert [sets[of[i]] for i in range(len(mask))] == [np.flatnonzero(r).tolist() for r in mask]
    assert len(sets) == len({r.tobytes() for r in mask})


def test_row_cols_of_an_empty_batch() -> None:
    assert _row_cols(np.zeros((0, 5), dtype=bool))[1] == []
