"""Loaders for the shared real data (correctness, ML.ENERGY, Electricity Maps) and the
default catalog builder. Every loader raises :class:`DataFileError` naming the file and line."""

from streams.data.carbon import ZoneIntensity, load_carbon_dir, load_zone
from streams.data.correctness import CorrectnessData, load_correctness
from streams.data.energy import EnergyProfile, load_energy
from streams.data.errors import DataFileError

__all__ = [
    "CorrectnessData",
    "DataFileError",
    "EnergyProfile",
    "ZoneIntensity",
    "load_carbon_dir",
    "load_correctness",
    "load_energy",
    "load_zone",
]
