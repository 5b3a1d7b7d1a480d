"""The dead-letter message: the original bytes of a rejected event and why it was rejected."""

from __future__ import annotations

import base64
from datetime import datetime, timezone

from pydantic import BaseModel, Field


class DeadLetter(BaseModel):
    """What goes to products.deadletter; ``value_b64`` lets anyone replay the exact bytes."""

    stage: str = Field(description="parse | validate | categorise | sink")
    reason: str
    key: str | None = None
    value_b64: str
    source_topic: str | None = None
    partition: int | None = None
    offset: int | None = None
    rejected_at: datetime = Field(default_factory=lambda: datetime.now(timezone.utc))

    @classmethod
    def of(cls, value: bytes, *, stage: str, reason: str, key: bytes | None = None,
           source_topic: str | None = None, partition: int | None = None, offset: int | None = None) -> DeadLetter:
        return cls(stage=stage, reason=reason, key=key.decode("utf-8", "replace") if key is not None else None,
                   value_b64=base64.b64encode(value).decode(), source_topic=source_topic,
                   partition=partition, offset=offset)

    def original_bytes(self) -> bytes:
        return base64.b64decode(self.value_b64)
