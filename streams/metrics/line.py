"""InfluxDB line protocol encoding (what we write: float/int/bool/string fields, string tags).

Hand-rolled rather than ``influxdb_client.Point`` because the writer encodes every point on the
caller's thread and ``Point`` is several times slower; the escaping rules are the documented ones
(https://docs.influxdata.com/influxdb/v2/reference/syntax/line-protocol/#special-characters).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

_MEASUREMENT_ESCAPES = str.maketrans({",": r"\,", " ": r"\ ", "\n": r"\n"})
_TAG_ESCAPES = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ ", "\n": r"\n"})

_STRING_ESCAPES = str.maketrans({'"': r"\"", "\\": r"\\"})

FieldValue = float | int | bool | str


def escape_tag(value: str) -> str:
    return value.translate(_TAG_ESCAPES)


def _field(value: FieldValue) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.translate(_STRING_ESCAPES) + '"'
    if isinstance(value, int):
        return f"{value}i"
    if not math.isfinite(value):
        return None  # NaN/inf are not representable in line protocol; skip the field
    return repr(float(value))


def head(measurement: str, tags: Mapping[str, str]) -> str:
    """Escaped measurement and sorted tags: the part of a line a repeated series can reuse."""
    tag_text = "".join(
        f",{escape_tag(k)}={escape_tag(v)}" for k, v in sorted(tags.items()) if v != ""
    )
    return measurement.translate(_MEASUREMENT_ESCAPES) + tag_text


def encode_with_head(line_head: str, fields: Mapping[str, FieldValue], ts_ms: int) -> str | None:
    """One line from a ``head``; None if no field is writable."""
    parts = []
    for key, value in fields.items():
        text = _field(value)
        if text is not None:
            parts.append(f"{escape_tag(key)}={text}")
    if not parts:
        return None
    return f"{line_head} {','.join(parts)} {int(ts_ms)}"


def encode(
    measurement: str,
    tags: Mapping[str, str],
    fields: Mapping[str, FieldValue],
    ts_ms: int,
) -> str | None:
    """One line, tags sorted (the order Influx recommends); None if no field is writable."""
    return encode_with_head(head(measurement, tags), fields, ts_ms)
