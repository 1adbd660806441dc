from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from streams.eval.scenario import Scenario, ScenarioSettings, build_scenario

SMALL_REQUESTS = 500
SMALL_DAYS = 2.0


def small_settings(shared_data: Path, **changes: object) -> ScenarioSettings:
    base = ScenarioSettings(
        correctness=(
            shared_data / "correctness/gsm8k-zeroeval.csv.gz",
            shared_data / "correctness/routerbench-subset.csv.gz",
        ),
        energy=shared_data / "energy/mlenergy-v3-llm.csv",
        carbon_dir=shared_data / "carbon/electricitymaps-hourly-2023",
        n_requests=SMALL_REQUESTS,
        days=SMALL_DAYS,
    )
    return ScenarioSettings(**{**base.__dict__, **changes})  # type: ignore[arg-type]


SettingsFactory = Callable[..., ScenarioSettings]


@pytest.fixture(scope="session")
def make_settings(shared_data: Path) -> SettingsFactory:
    """Small scenario settings on the real files; keyword arguments change fields."""

    def make(**changes: object) -> ScenarioSettings:
        return small_settings(shared_data, **changes)

    return make


@pytest.fixture(scope="session")
def small_scenario(shared_data: Path) -> Scenario:
    return build_scenario(small_settings(shared_data))
