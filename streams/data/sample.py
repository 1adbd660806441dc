"""The small sample of the public data shipped in the package (``streams/resources/sample``).

It is cut from the full data (``python -m streams.data.sample FULL_DIR OUT_DIR``) so that
``gar demo`` and a short ``gar eval`` run on an installed package with no other download:
four weeks of hourly intensity from day 150 of 2023 for the default catalog's zones, a
deterministic subset of the graded questions answered by the default catalog's models, and the
whole energy table. The layout is the full data's, so ``--data DIR`` swaps one for the other.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import shutil
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from streams.data.errors import DataDirError

CARBON = Path("carbon") / "electricitymaps-hourly-2023"
CORRECTNESS = Path("correctness")
ENERGY = Path("energy") / "mlenergy-v3-llm.csv"
SAMPLE_ZONES = ("DE-LU", "GB", "SG", "US-CAL-CISO", "US-MIDA-PJM")
SAMPLE_START = datetime(2023, 1, 1, tzinfo=UTC) + timedelta(days=150)
SAMPLE_DAYS = 28
# Questions kept per dataset (all of a dataset with fewer).
QUESTIONS_PER_DATASET = {"gsm8k": 1000, "arc-challenge": 600, "winogrande": 600, "mbpp": 427}
SAMPLE_MODELS = (
    "Qwen2-7B-Instruct",
    "Llama-3.1-8B-Instruct",
    "gemma-2-9b-it",
    "gemma-2-27b-it",
    "Llama-3.1-70B-Instruct",
    "mistralai/mistral-7b-chat",
    "WizardLM/WizardLM-13B-V1.2",
    "zero-one-ai/Yi-34B-Chat",
    "mistralai/mixtral-8x7b-chat",
    "meta/llama-2-70b-chat",
)


def check_data_dir(directory: Path) -> None:
    """Raise ``DataDirError`` unless ``directory`` has the layout the tools read."""
    missing = [p for p in (directory / ENERGY, directory / CARBON) if not p.exists()]
    if not list((directory / CORRECTNESS).glob("*.csv*")):
        missing.append(directory / CORRECTNESS / "*.csv.gz")
    if missing:
        raise DataDirError(directory, missing)


def _rank(query_id: str) -> bytes:
    return hashlib.blake2b(query_id.encode(), digest_size=8).digest()


def _write_gz(path: Path, header: list[str], rows: list[list[str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with (
        open(path, "wb") as raw,
        gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz,  # mtime 0: reproducible bytes
        io.TextIOWrapper(gz, encoding="utf-8", newline="") as out,
    ):
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def cut_carbon(full: Path, out: Path) -> None:
    lo = SAMPLE_START.strftime("%Y-%m-%d %H:%M:%S")
    hi = (SAMPLE_START + timedelta(days=SAMPLE_DAYS)).strftime("%Y-%m-%d %H:%M:%S")
    for zone in SAMPLE_ZONES:
        with gzip.open(full / CARBON / f"{zone}.csv.gz", "rt", encoding="utf-8", newline="") as f:
            rows = list(csv.reader(f))
        kept = [r for r in rows[1:] if lo <= r[0] < hi]
        _write_gz(out / CARBON / f"{zone}.csv.gz", rows[0], kept)


def cut_correctness(full: Path, out: Path) -> None:
    for src in sorted((full / CORRECTNESS).glob("*.csv.gz")):
        with gzip.open(src, "rt", encoding="utf-8", newline="") as f:
            rows = list(csv.reader(f))
        header, body = rows[0], rows[1:]
        q, d, m = header.index("query_id"), header.index("dataset"), header.index("model")
        by_dataset: dict[str, set[str]] = {}
        for r in body:
            by_dataset.setdefault(r[d], set()).add(r[q])
        keep: set[str] = set()
        for dataset, ids in by_dataset.items():
            n = QUESTIONS_PER_DATASET.get(dataset, 0)
            keep.update(sorted(ids, key=_rank)[:n])
        kept = [r for r in body if r[q] in keep and r[m] in SAMPLE_MODELS]
        _write_gz(out / CORRECTNESS / src.name, header, kept)


def build_sample(full: Path, out: Path) -> None:
    check_data_dir(full)
    cut_carbon(full, out)
    cut_correctness(full, out)
    (out / ENERGY).parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(full / ENERGY, out / ENERGY)


if __name__ == "__main__":  # pragma: no cover - a maintainer's tool
    build_sample(Path(sys.argv[1]), Path(sys.argv[2]))
