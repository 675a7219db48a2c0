"""The people's domain events (internal: the desk's own handlers react, no webhook carries them).

``accounts`` sits below the desk core: it cannot call the core when an agent comes back, so it
says so with an event, and the core's handler (automatic assignment) gives them what waits.
"""

import dataclasses

from common.events import DomainEvent, event_type


@event_type
@dataclasses.dataclass(frozen=True, kw_only=True)
class UserAvailabilityChanged(DomainEvent):
    """The user switched between ``available`` and ``away`` (``accounts.models.Availability``)."""

    type = "user.availability_changed"
    public = False
    user_id: int
    availability: str
    actor_id: int | None = None
