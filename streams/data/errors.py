"""One error type for every malformed or unknown input file, naming the file and the line."""

from __future__ import annotations

from pathlib import Path


class DataFileError(ValueError):
    """An input file cannot be used. ``line`` is 1-based (the header is line 1), or None."""

    def __init__(self, path: Path | str, message: str, line: int | None = None) -> None:
        self.path = Path(path)
        self.line = line
        self.reason = message
        where = f"{self.path}:{line}" if line is not None else str(self.path)
        super().__init__(f"{where}: {message}")


class DataDirError(DataFileError):
    """A data directory lacks files a command reads."""

    def __init__(self, directory: Path, missing: list[Path]) -> None:
        names = ", ".join(str(p.relative_to(directory)) for p in missing)
        super().__init__(directory, f"not a gar data directory: missing {names}")
