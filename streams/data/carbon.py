"""Electricity Maps hourly CSV exports (one file per zone, as the data portal ships them).

The zone key is the file name stem (``GB.csv.gz`` -> ``GB``), which is what users pass on the
command line; the file's own ``Zone Id`` column is kept too (it differs for a few exports, e.g.
``DE-LU.csv.gz`` carries ``DE``). Intensities are *average* ones, either "direct" (combustion)
or "LCA" (life-cycle); rows may be estimated by Electricity Maps (``Data Estimated``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt

from streams.data._csv import parse_bool, parse_float, read_header, read_rows
from streams.data.errors import DataFileError

SignalKind = Literal["direct", "lca"]

_DATETIME = "Datetime (UTC)"
_ZONE_ID = "Zone Id"
_ESTIMATED = "Data Estimated"
_SUFFIXES = (".csv.gz", ".csv")


@dataclass(frozen=True)
class ZoneIntensity:
    """Hourly series for one zone, sorted by time. ``ts_ms`` is the start of each hour (UTC)."""

    zone: str
    zone_id: str
    zone_name: str
    signal: SignalKind
    ts_ms: npt.NDArray[np.int64]
    intensity_g_per_kwh: npt.NDArray[np.float64]
    estimated: npt.NDArray[np.bool_]
    source: str

    def at(self, ts_ms: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Intensity in force at each time (the latest hour that started at or before it)."""
        idx = np.searchsorted(self.ts_ms, np.asarray(ts_ms, dtype=np.int64), side="right") - 1
        return self.intensity_g_per_kwh[np.clip(idx, 0, self.ts_ms.size - 1)]


def _intensity_column(path: Path, header: list[str], signal: SignalKind) -> str:
    tag = "(direct)" if signal == "direct" else "(lca)"
    for name in header:
        if name.lower().startswith("carbon intensity") and name.lower().endswith(tag):
            return name
    raise DataFileError(path, f"no 'Carbon Intensity ... {tag}' column; header is {header}", 1)


def zone_of(path: Path) -> str:
    for suffix in _SUFFIXES:
        if path.name.endswith(suffix):
            return path.name[: -len(suffix)]
    return path.stem


def load_zone(path: Path | str, signal: SignalKind = "direct") -> ZoneIntensity:
    path = Path(path)
    column = _intensity_column(path, read_header(path), signal)
    stamps: list[str] = []
    values: list[float] = []
    estimated: list[bool] = []
    zone_id = zone_name = ""
    sources: set[str] = set()
    for line, row in read_rows(path, (_DATETIME, _ZONE_ID, _ESTIMATED, column)):
        stamps.append(row[_DATETIME].strip())
        value = parse_float(path, line, column, row[column])
        if value < 0:
            raise DataFileError(path, f"negative intensity {value}", line)
        values.append(value)
        estimated.append(parse_bool(path, line, _ESTIMATED, row[_ESTIMATED]))
        zone_id = zone_id or row[_ZONE_ID].strip()
        zone_name = zone_name or row.get("Zone Name", "").strip()
        if row.get("Data Source"):
            sources.add(row["Data Source"].strip())
    ts_ms = _parse_stamps(path, stamps)
    order = np.argsort(ts_ms, kind="stable")
    if np.any(np.diff(ts_ms[order]) == 0):
        dup = int(order[int(np.flatnonzero(np.diff(ts_ms[order]) == 0)[0])])
        raise DataFileError(path, f"duplicate timestamp {stamps[dup]!r}", dup + 2)
    return ZoneIntensity(
        zone=zone_of(path),
        zone_id=zone_id,
        zone_name=zone_name,
        signal=signal,
        ts_ms=ts_ms[order],
        intensity_g_per_kwh=np.asarray(values, dtype=np.float64)[order],
        estimated=np.asarray(estimated, dtype=np.bool_)[order],
        source="; ".join(sorted(sources)),
    )


def _parse_stamps(path: Path, stamps: list[str]) -> npt.NDArray[np.int64]:
    try:
        parsed = np.array(
            [s.replace(" ", "T", 1).rstrip("Z") for s in stamps], dtype="datetime64[ms]"
        )
    except ValueError:
        for i, s in enumerate(stamps):
            try:
                np.datetime64(s.replace(" ", "T", 1).rstrip("Z"), "ms")
            except ValueError:
                raise DataFileError(path, f"bad {_DATETIME!r} value {s!r}", i + 2) from None
        raise
    return parsed.astype(np.int64)


def carbon_files(directory: Path | str) -> dict[str, Path]:
    directory = Path(directory)
    if not directory.is_dir():
        raise DataFileError(directory, "not a directory of Electricity Maps CSV exports")
    files = {zone_of(p): p for p in sorted(directory.iterdir()) if p.name.endswith(_SUFFIXES)}
    if not files:
        raise DataFileError(directory, "no *.csv or *.csv.gz files")
    return files


def load_carbon_dir(
    directory: Path | str, zones: list[str] | None = None, signal: SignalKind = "direct"
) -> dict[str, ZoneIntensity]:
    """Load the requested zones (default: every file) from a directory of exports."""
    files = carbon_files(directory)
    wanted = list(files) if zones is None else zones
    unknown = [z for z in wanted if z not in files]
    if unknown:
        raise DataFileError(directory, f"no export for zone(s) {unknown}; have {sorted(files)}")
    return {z: load_zone(files[z], signal) for z in wanted}
