"""A small catalog built from the shared real data (for the tools tests)."""

from __future__ import annotations

from functools import cache

from streams.config import Settings
from streams.core.catalog import Catalog
from streams.data import CorrectnessData, load_correctness, load_energy
from streams.data.catalog_builder import build_catalog
from streams.tools.produce import correctness_files

MODELS = ("Llama-3.1-8B-Instruct", "Llama-3.1-70B-Instruct", "mistralai/mistral-7b-chat")
ZONES = ("GB", "DE-LU")


@cache
def correctness() -> CorrectnessData:
    return load_correctness(correctness_files(Settings()))


@cache
def real_catalog() -> Catalog:
    data_dir = Settings().data.dir
    profiles = load_energy(data_dir / "energy" / "mlenergy-v3-llm.csv")
    return build_catalog(correctness(), profiles, models=MODELS, zones=ZONES).catalog
