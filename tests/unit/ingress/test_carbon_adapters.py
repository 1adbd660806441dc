"""Carbon-intensity adapters: real Electricity Maps export, EM API JSON, WattTime JSON."""

from __future__ import annotations

import gzip
import itertools
from pathlib import Path

import pytest

from streams.config import Settings
from streams.data.errors import DataFileError
from streams.ingress.carbon import (
    LBS_PER_MWH_TO_G_PER_KWH,
    CarbonAdapterError,
    from_em_api,
    from_watttime,
    iter_em_csv,
)
from streams.ingress.rejected import RejectReason
from streams.schema import validation_errors

CARBON_DIR = Settings().data.dir / "carbon" / "electricitymaps-hourly-2023"
HEADER = (
    "Datetime (UTC),Country,Zone Name,Zone Id,Carbon Intensity gCO₂eq/kWh (direct),"
    "Carbon Intensity gCO₂eq/kWh (LCA),Low Carbon Percentage,Renewable Percentage,"
    "Data Source,Data Estimated,Data Estimation Method"
)


def write_export(tmp_path: Path, rows: list[str], name: str = "GB.csv.gz") -> Path:
    path = tmp_path / name
    text = HEADER + "\n" + "\n".join(rows) + "\n"
    if name.endswith(".gz"):
        with gzip.open(path, "wt", encoding="utf-8") as fh:
            fh.write(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def test_real_export_maps_to_valid_events() -> None:
    path = CARBON_DIR / "GB.csv.gz"
    events = list(itertools.islice(iter_em_csv(path), 48))
    assert len(events) == 48
    for e in events:
        assert validation_errors("carbon-intensity", e) == []
        assert e["zone"] == "GB" and e["signal_type"] == "average"
        assert e["source"] == "electricitymaps-csv" and e["emission_factor"] == "lifecycle"
    assert [e["ts_ms"] for e in events] == [1_672_531_200_000 + h * 3_600_000 for h in range(48)]


def test_direct_vs_lifecycle_columns(tmp_path: Path) -> None:
    row = "2023-01-01 00:00:00,GB,Great Britain,GB,62.55,91.44,86.0,60.17,elexon,true,TIME_SLICER"
    path = write_export(tmp_path, [row])
    (lca,) = iter_em_csv(path)
    (direct,) = iter_em_csv(path, emission_factor="direct")
    assert (lca["intensity_g_per_kwh"], direct["intensity_g_per_kwh"]) == (91.44, 62.55)
    assert lca["estimated"] is True and lca["estimation_method"] == "TIME_SLICER"


def test_zone_defaults_to_file_stem_and_can_be_overridden(tmp_path: Path) -> None:
    row = "2023-01-01 00:00:00,DE,Germany,DE,300,350,50,40,src,false,"
    path = write_export(tmp_path, [row], "DE-LU.csv")
    assert next(iter_em_csv(path))["zone"] == "DE-LU"
    assert next(iter_em_csv(path, zone="DE"))["zone"] == "DE"


@pytest.mark.parametrize(
    "row",
    [
        "2023-01-01 00:00:00,GB,GB,GB,1,abc,0,0,s,false,",
        "2023-01-01 00:00:00,GB,GB,GB,1,,0,0,s,false,",
        "yesterday,GB,GB,GB,1,2,0,0,s,false,",
        "2023-01-01 00:00:00,GB,GB,GB,1,2,0,0,s,maybe,",
        "2023-01-01 00:00:00,GB,GB,GB,1,nan,0,0,s,false,",
    ],
)
def test_bad_rows_name_file_and_line(tmp_path: Path, row: str) -> None:
    good = "2023-01-01 01:00:00,GB,GB,GB,1,2,0,0,s,false,"
    path = write_export(tmp_path, [good, row])
    with pytest.raises(DataFileError) as err:
        list(iter_em_csv(path))
    assert "GB.csv.gz" in str(err.value) and "3" in str(err.value)


def test_em_api_latest_and_history() -> None:
    latest = {
        "zone": "DE",
        "carbonIntensity": 302,
        "datetime": "2023-05-01T12:00:00.000Z",
        "updatedAt": "2023-05-01T12:34:56.000Z",
        "createdAt": "2023-04-28T12:00:00.000Z",
        "emissionFactorType": "lifecycle",
        "isEstimated": True,
        "estimationMethod": "TIME_SLICER_AVERAGE",
    }
    (e,) = from_em_api(latest)
    assert validation_errors("carbon-intensity", e) == []
    assert e["ts_ms"] == 1_682_942_400_000 and e["updated_at_ms"] == 1_682_944_496_000
    assert e["estimated"] is True and e["estimation_method"] == "TIME_SLICER_AVERAGE"
    hist = from_em_api({"zone": "DE", "history": [{**latest, "zone": None}] * 3})
    assert len(hist) == 3 and all(h["zone"] == "DE" for h in hist)


@pytest.mark.parametrize(
    ("obj", "reason"),
    [
        ({"zone": "DE", "datetime": "2023-05-01T12:00:00Z"}, RejectReason.MISSING_FIELD),
        (
            {"zone": "DE", "carbonIntensity": "high", "datetime": "2023-05-01"},
            RejectReason.WRONG_TYPE,
        ),
        ({"zone": "DE", "carbonIntensity": 1, "datetime": "soon"}, RejectReason.BAD_FORMAT),
        (
            {"zone": "DE", "carbonIntensity": 1, "datetime": "2023", "isEstimated": 1},
            RejectReason.WRONG_TYPE,
        ),
    ],
)
def test_em_api_errors(obj: dict[str, object], reason: RejectReason) -> None:
    with pytest.raises(CarbonAdapterError) as err:
        from_em_api(obj)
    assert err.value.reason == reason


def test_watttime_v3_envelope_converts_lbs_per_mwh_and_marks_forecasts() -> None:
    env = {
        "meta": {
            "region": "CAISO_NORTH",
            "signal_type": "co2_moer",
            "units": "lbs_co2_per_mwh",
            "generated_at": "2023-01-01T00:00:00+00:00",
        },
        "data": [
            {"point_time": "2023-01-01T00:00:00+00:00", "value": 1000.0},
            {"point_time": "2023-01-01T00:05:00+00:00", "value": 500.0},
        ],
    }
    events = from_watttime(env)
    assert [e["intensity_g_per_kwh"] for e in events] == pytest.approx(
        [1000 * LBS_PER_MWH_TO_G_PER_KWH, 500 * LBS_PER_MWH_TO_G_PER_KWH]
    )
    assert all(e["signal_type"] == "marginal" and e["zone"] == "CAISO_NORTH" for e in events)
    assert [e["estimated"] for e in events] == [False, True]
    for e in events:
        assert validation_errors("carbon-intensity", e) == []


def test_watttime_flat_points_and_units() -> None:
    points = [
        {"ba": "PJM", "point_time": "2023-01-01T00:00:00Z", "value": 400, "units": "g_co2_per_kwh"},
        {
            "ba": "PJM",
            "point_time": "2023-01-01T00:05:00Z",
            "value": 400,
            "signal_type": "co2_aoer",
        },
    ]
    a, b = from_watttime(points)
    assert a["intensity_g_per_kwh"] == 400 and a["signal_type"] == "marginal"
    assert b["intensity_g_per_kwh"] == pytest.approx(400 * 0.45359237)
    assert b["signal_type"] == "average"
    assert from_watttime(points[0], zone="US-MIDA-PJM")[0]["zone"] == "US-MIDA-PJM"


@pytest.mark.parametrize(
    "obj",
    [
        {
            "ba": "X",
            "point_time": "2023-01-01T00:00:00Z",
            "value": 1,
            "signal_type": "health_damage",
        },
        {"ba": "X", "point_time": "2023-01-01T00:00:00Z", "value": 1, "units": "percent"},
        {"point_time": "2023-01-01T00:00:00Z", "value": 1},
        {"ba": "X", "point_time": "2023-01-01T00:00:00Z", "value": None},
        {"meta": [], "data": []},
        "nope",
    ],
)
def test_watttime_errors(obj: object) -> None:
    with pytest.raises(CarbonAdapterError):
        from_watttime(obj)
