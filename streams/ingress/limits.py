"""Size and range limits for every input record (mirrored in ``schemas/*.v1.json``).

One place for the numbers: the parsers read them from here, the JSON Schemas state the same
values and ``tests/unit/schema/test_schema_contract.py`` checks that the two agree.
"""

from __future__ import annotations

from dataclasses import dataclass

# Timestamps outside [2000-01-01, 2100-01-01) are absurd for event time; they are
# almost always seconds-vs-milliseconds mistakes.
MIN_TS_MS = 946_684_800_000
MAX_TS_MS = 4_102_444_800_000

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:/@#+=-]*$"
"""request ids, tenants, datasets, regions, zones, models: printable ASCII, no spaces/quotes."""


@dataclass(frozen=True, slots=True)
class Limits:
    """Per-field bounds; defaults are the documented v1 contract."""

    max_request_bytes: int = 16_384
    max_completion_bytes: int = 16_384
    max_intensity_bytes: int = 4_096
    # Provider envelopes (WattTime data[], Electricity Maps history[]) on the same topic.
    max_intensity_batch_bytes: int = 1_048_576
    max_intensity_batch_points: int = 10_000
    max_policy_bytes: int = 262_144
    max_id_chars: int = 128
    max_name_chars: int = 64
    max_model_chars: int = 128
    max_text_chars: int = 64
    max_list_items: int = 64
    max_input_tokens: int = 2_000_000
    max_output_tokens: int = 262_144
    max_latency_ms: float = 3_600_000.0
    max_energy_j: float = 1.0e8
    max_intensity_g_per_kwh: float = 5_000.0
    min_ts_ms: int = MIN_TS_MS
    max_ts_ms: int = MAX_TS_MS
    # Bytes of the original message kept (base64) in a dead-letter record.
    max_dead_letter_original_bytes: int = 65_536


DEFAULT_LIMITS = Limits()
