"""Catalog: JSON round trip, derived index arrays, typed errors for bad or inconsistent files."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from support.core_fixtures import catalog_dict, small_catalog

from streams.core import Catalog, CatalogError


def test_round_trip_and_indices(tmp_path: Path) -> None:
    cat = small_catalog()
    assert cat.n_candidates == 9  # no deployments list: every model in every region
    assert cat.datasets == ("gsm8k", "mbpp", "*")
    assert cat.client_regions == ("eu", "us")
    for k, (m, r) in enumerate(cat.deployments):
        assert cat.models[cat.cand_model_idx[k]].name == m
        assert cat.regions[cat.cand_region_idx[k]].name == r
    p = tmp_path / "c.json"
    cat.dump(p)
    again = Catalog.load(p)
    assert again.to_dict() == cat.to_dict()
    # Unknown client region gets each region's worst RTT; unknown dataset the "*" row.
    assert cat.client_idx("mars") == 2
    np.testing.assert_array_equal(cat.rtt_ms[2], [120.0, 90.0, 220.0])
    assert cat.dataset_idx("no-such-dataset") == cat.dataset_idx("*")


def test_star_defaults_are_derived() -> None:
    mid = small_catalog().models[1]
    assert mid.output_tokens_for("*") == pytest.approx((190.0 + 160.0) / 2)
    star = mid.prior_for("*")
    assert star.mean == pytest.approx((0.88 + 0.62) / 2)
    assert star.strength < mid.prior_for("gsm8k").strength


def _broken(mutate: Callable[[dict[str, Any]], object]) -> dict[str, Any]:
    d = copy.deepcopy(catalog_dict())
    mutate(d)
    return d


@pytest.mark.parametrize(
    ("mutate", "needle"),
    [
        (lambda d: d["models"].append(copy.deepcopy(d["models"][0])), "duplicate model"),
        (
            lambda d: d.__setitem__("deployments", [{"model": "nope", "region": "eu-north"}]),
            "unknown model",
        ),
        (
            lambda d: d.__setitem__("deployments", [{"model": "small-8b", "region": "nope"}]),
            "unknown region",
        ),
        (lambda d: d.__setitem__("deployments", []), "empty candidate set"),
        (
            lambda d: d["models"][0].__setitem__("energy_per_output_token_j", float("nan")),
            "out of range",
        ),
        (lambda d: d["models"][0].__setitem__("energy_per_input_token_j", -1.0), "out of range"),
        (
            lambda d: d["models"][0]["correctness_prior"].__setitem__("gsm8k", 1.5),
            r"not in \[0, 1\]",
        ),
        (lambda d: d["models"][0].pop("correctness_prior"), "correctness_prior"),
        (lambda d: d["regions"][0].__setitem__("pue", 0.5), "out of range"),
        (lambda d: d["regions"][0]["rtt_ms"].pop("us"), "no rtt_ms"),
        (lambda d: d.__setitem__("format", "other/9"), "unsupported catalog format"),
        (lambda d: d.__setitem__("version", ""), "version"),
        (lambda d: d["models"][0].__setitem__("params_b", "big"), "must be a number"),
    ],
)
def test_bad_catalogs_raise_catalog_error(
    mutate: Callable[[dict[str, Any]], object], needle: str
) -> None:
    with pytest.raises(CatalogError, match=needle):
        Catalog.from_dict(_broken(mutate))


def test_load_errors_are_typed(tmp_path: Path) -> None:
    with pytest.raises(CatalogError):
        Catalog.load(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(CatalogError):
        Catalog.load(bad)
    bad.write_text(json.dumps([1, 2]))
    with pytest.raises(CatalogError):
        Catalog.load(bad)


def test_candidate_order_follows_deployments() -> None:
    d = catalog_dict()
    d["deployments"] = [
        {"model": "large-70b", "region": "ap-south"},
        {"model": "small-8b", "region": "eu-north"},
    ]
    cat = Catalog.from_dict(d)
    assert cat.deployments == (("large-70b", "ap-south"), ("small-8b", "eu-north"))
    # Rank is name order, independent of the file's order.
    assert list(cat.cand_rank) == [0, 1]
    assert cat.candidate_index("small-8b", "eu-north") == 1
    with pytest.raises(CatalogError):
        cat.candidate_index("small-8b", "ap-south")
