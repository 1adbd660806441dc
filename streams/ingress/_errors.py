"""Internal control flow of the parsers: a field check raises ``Bad``, the entry point turns it
into a ``Rejected``. Nothing here escapes ``streams.ingress``."""

from __future__ import annotations

from streams.ingress.rejected import RejectReason, Stage


class Bad(Exception):  # noqa: N818 - internal signal, not an error type users see
    __slots__ = ("field", "message", "reason", "stage")

    def __init__(
        self,
        reason: RejectReason,
        message: str,
        field: str | None = None,
        stage: Stage = Stage.VALIDATE,
    ) -> None:
        self.reason = reason
        self.message = message
        self.field = field
        self.stage = stage
