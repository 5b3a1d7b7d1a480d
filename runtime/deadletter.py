"""A consumed event and its dead letter, after Kafka Connect's convention: the original key and bytes,
why in headers.

The value is the rejected event's bytes unchanged (never re-encoded), so a dead letter always
fits where its original did and anyone can replay it as it was; stage, reason, source
topic/partition/offset and time travel as headers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone

from prodcat.errors import Stage
from runtime.policy import ErrorPolicy
from runtime.sinks.base import Message, Sink

# header names (prefixed like Connect's __connect.errors.* so tools can tell them from the feed's own)
STAGE, REASON, TOPIC, PARTITION, OFFSET, TIME = (f"prodcat.errors.{name}" for name in
                                                  ("stage", "reason", "topic", "partition", "offset", "time"))
MAX_REASON_BYTES = 2000  # a reason quotes the input at most briefly; headers count against the message size


@dataclass(frozen=True)
class DeadLetter:
    """A rejected event: its original key and bytes, the stage that refused it and why."""

    value: bytes
    stage: Stage
    reason: str
    key: bytes | None = None
    source_topic: str | None = None
    partition: int | None = None
    offset: int | None = None
    rejected_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))

    def message(self, topic: str) -> Message:
        """The products.deadletter message: original key and value, the rest in headers."""
        headers: list[tuple[str, str | bytes | None]] = [(STAGE, str(self.stage).encode()),
                   (REASON, self.reason.encode("utf-8", "replace")[:MAX_REASON_BYTES]),
                   (TIME, self.rejected_at.isoformat().encode())]
        if self.source_topic is not None:
            headers.append((TOPIC, self.source_topic.encode()))
        if self.partition is not None:
            headers.append((PARTITION, str(self.partition).encode()))
        if self.offset is not None:
            headers.append((OFFSET, str(self.offset).encode()))
        return Message(topic, self.key, self.value, headers)

    @classmethod
    def from_message(cls, key: bytes | None, value: bytes,
                     headers: Sequence[tuple[str, str | bytes | None]] | None) -> DeadLetter:
        """Read a products.deadletter message back (for tools and tests)."""
        h = {name: raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw or "" for name, raw in headers or []}
        return cls(value=value, key=key, stage=Stage(h[STAGE]), reason=h.get(REASON, ""),
                   source_topic=h.get(TOPIC), partition=int(h[PARTITION]) if PARTITION in h else None,
                   offset=int(h[OFFSET]) if OFFSET in h else None,
                   rejected_at=datetime.fromisoformat(h[TIME]) if TIME in h else datetime.now(timezone.utc))


@dataclass(frozen=True)
class RawEvent:
    """One Kafka message as received: the bytes are kept so a reject can be replayed exactly."""

    value: bytes
    key: bytes | None = None
    topic: str | None = None
    partition: int | None = None
    offset: int | None = None

    def reject(self, stage: Stage, reason: str) -> DeadLetter:
        return DeadLetter(self.value, Stage(stage), reason, key=self.key, source_topic=self.topic,
                          partition=self.partition, offset=self.offset)


class DeadLetterRefused(RuntimeError):
    """The dead-letter topic refused a dead letter: acking its event would lose it, so the worker stops."""


async def send(policy: ErrorPolicy, kafka: Sink[Message], deadletter_topic: str, dead: Sequence[DeadLetter],
               outputs: Sequence[Message] = ()) -> list[tuple[Message, str]]:
    """Dead letters and other outputs in one write; returns the outputs the broker refused.

    Raises :class:`DeadLetterRefused` if a dead letter itself was refused.
    """
    letters = [d.message(deadletter_topic) for d in dead]
    written = await policy.write(Stage.KAFKA, kafka, letters + list(outputs))
    letter_ids = {id(msg) for msg in letters}
    lost = [reason for msg, reason in written.failed if id(msg) in letter_ids]
    if lost:
        raise DeadLetterRefused(f"{deadletter_topic} refused {len(lost)} dead letters ({lost[0]}); their events "
                                "are not acked and will be consumed again: check the topic's max.message.bytes "
                                "and the worker's access to it")
    return [(msg, reason) for msg, reason in written.failed if id(msg) not in letter_ids]
