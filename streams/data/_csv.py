"""Shared CSV plumbing: open plain or gzip files and iterate rows with line numbers."""

from __future__ import annotations

import csv
import gzip
import io
from collections.abc import Iterator, Sequence
from pathlib import Path

from streams.data.errors import DataFileError


def _open_text(path: Path) -> io.TextIOBase:
    if not path.is_file():
        raise DataFileError(path, "no such file")
    try:
        if path.suffix == ".gz":
            return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8-sig", newline="")
        return open(path, encoding="utf-8-sig", newline="")
    except OSError as exc:
        raise DataFileError(path, f"cannot open: {exc}") from exc


def read_header(path: Path) -> list[str]:
    handle = _open_text(path)
    try:
        return [h.strip() for h in next(csv.reader(handle))]
    except StopIteration:
        raise DataFileError(path, "empty file (no header)", 1) from None
    except (csv.Error, UnicodeDecodeError, OSError, EOFError) as exc:
        raise DataFileError(path, f"unreadable header: {exc}", 1) from exc
    finally:
        handle.close()


def read_rows(path: Path, required: Sequence[str]) -> Iterator[tuple[int, dict[str, str]]]:
    """Yield ``(line_number, row)``; fail with the file and line on a bad header or short row."""
    handle = _open_text(path)
    try:
        reader = csv.reader(handle)
        try:
            header = [h.strip() for h in next(reader)]
        except StopIteration:
            raise DataFileError(path, "empty file (no header)", 1) from None
        except (csv.Error, UnicodeDecodeError, OSError, EOFError) as exc:
            raise DataFileError(path, f"unreadable header: {exc}", 1) from exc
        missing = [c for c in required if c not in header]
        if missing:
            raise DataFileError(path, f"missing column(s) {missing}; header is {header}", 1)
        width = len(header)
        line = 1
        while True:
            try:
                fields = next(reader)
            except StopIteration:
                return
            except (csv.Error, UnicodeDecodeError, OSError, EOFError) as exc:
                raise DataFileError(path, f"unreadable row: {exc}", line + 1) from exc
            line = reader.line_num
            if not fields or (len(fields) == 1 and not fields[0].strip()):
                continue
            if len(fields) != width:
                raise DataFileError(path, f"expected {width} fields, found {len(fields)}", line)
            yield line, dict(zip(header, fields, strict=True))
    finally:
        handle.close()


def parse_float(path: Path, line: int, column: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise DataFileError(path, f"column {column!r}: not a number: {text!r}", line) from None
    if value != value or value in (float("inf"), float("-inf")):
        raise DataFileError(path, f"column {column!r}: not finite: {text!r}", line)
    return value


def parse_bool(path: Path, line: int, column: str, text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no", ""):
        return False
    raise DataFileError(path, f"column {column!r}: not a boolean: {text!r}", line)
