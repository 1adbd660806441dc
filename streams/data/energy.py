"""The ML.ENERGY v3 LLM CSV: one row per serving configuration (model, GPU, count, batch)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from streams.data._csv import parse_float, read_rows
from streams.data.errors import DataFileError

ENERGY_COLUMNS = (
    "model_id", "task", "total_params_b", "active_params_b", "precision", "gpu_model",
    "num_gpus", "max_num_seqs", "avg_batch_size", "avg_output_len", "avg_power_watts",
    "energy_per_request_j", "energy_per_token_j", "output_throughput_tok_s", "median_itl_ms",
    "p90_itl_ms", "p95_itl_ms", "p99_itl_ms",
)  # fmt: skip


@dataclass(frozen=True)
class EnergyProfile:
    """One measured serving configuration. ``line`` is where it sits in the source file."""

    model_id: str
    task: str
    total_params_b: float
    active_params_b: float
    precision: str
    gpu_model: str
    num_gpus: int
    max_num_seqs: int
    avg_batch_size: float
    avg_output_len: float
    avg_power_watts: float
    energy_per_request_j: float
    energy_per_token_j: float
    output_throughput_tok_s: float
    median_itl_ms: float
    p90_itl_ms: float
    p95_itl_ms: float
    p99_itl_ms: float
    line: int

    @property
    def is_moe(self) -> bool:
        # Mixture-of-experts models activate fewer parameters than they hold.
        return self.active_params_b < self.total_params_b * 0.95


_FLOATS = (
    "total_params_b", "active_params_b", "avg_batch_size", "avg_output_len", "avg_power_watts",
    "energy_per_request_j", "energy_per_token_j", "output_throughput_tok_s", "median_itl_ms",
    "p90_itl_ms", "p95_itl_ms", "p99_itl_ms",
)  # fmt: skip


def load_energy(path: Path | str) -> list[EnergyProfile]:
    path = Path(path)
    profiles: list[EnergyProfile] = []
    for line, row in read_rows(path, ENERGY_COLUMNS):
        values = {c: parse_float(path, line, c, row[c]) for c in _FLOATS}
        for column in ("total_params_b", "active_params_b", "energy_per_token_j", "median_itl_ms"):
            if values[column] <= 0:
                raise DataFileError(path, f"column {column!r} must be positive", line)
        ints = {c: int(parse_float(path, line, c, row[c])) for c in ("num_gpus", "max_num_seqs")}
        if not row["model_id"].strip():
            raise DataFileError(path, "empty model_id", line)
        profiles.append(
            EnergyProfile(
                model_id=row["model_id"].strip(),
                task=row["task"].strip(),
                precision=row["precision"].strip(),
                gpu_model=row["gpu_model"].strip(),
                line=line,
                num_gpus=ints["num_gpus"],
                max_num_seqs=ints["max_num_seqs"],
                **values,  # type: ignore[arg-type]
            )
        )
    if not profiles:
        raise DataFileError(path, "no data rows")
    return profiles
