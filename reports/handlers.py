"""The reports as a domain-event handler: segments and roll-ups written inside the emitting
transaction, so the figures commit (or roll back) with the change that moved them."""

from collections.abc import Sequence

from common.events import DomainEvent

from .services import segments_record


class SegmentRecorder:
    def in_transaction(self, events: Sequence[DomainEvent]) -> None:
        segments_record(events=events)
