"""The departments' domain events (internal: the desk's own handlers react, no webhook carries
them). ``departments`` sits below the desk core, so it says what changed and the core reacts."""

import dataclasses

from common.events import DomainEvent, event_type


@event_type
@dataclasses.dataclass(frozen=True, kw_only=True)
class DepartmentAssignmentChanged(DomainEvent):
    """The department's ``assignment`` mode changed (``departments.models.AssignmentMode``):
    switched to an automatic one, what already waits in its queue is assigned."""

    type = "department.assignment_changed"
    public = False
    department_id: int
    assignment: str
    actor_id: int | None = None
