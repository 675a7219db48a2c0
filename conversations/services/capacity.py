"""An agent's capacity (``max_conversations``, contract §10) binds people as it binds automatic
assignment.

It is a ceiling on the open conversations an **agent** holds, whichever way a conversation
reaches them: automatic assignment (:mod:`.assignment`), taking one over, a transfer or an
assignment to them, starting a conversation, a reopening that gives one back. An agent at the
ceiling who takes one (or passes one to a full colleague) is refused with ``409 at_capacity``
and told what to do. Supervisors and admins may go past it, explicitly only
(``over_capacity``: the API's flag, the console's "… anyway" button, the back office's box); the
event row keeps ``over_capacity`` so the history and the audit show it. Supervisors and admins
themselves are never given conversations automatically and are not bound when they step in.

The check counts under the agent's assignment-state row lock (``locks.agent_states_lock``),
taken before the conversation's row as automatic assignment takes them, so a person and a
racing worker never both give the agent their last free place.
"""

from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from accounts.models import User
from common.exceptions import Conflict, NotPermitted

from .. import selectors
from ..error_codes import ConversationErrorCode
from ..locks import agent_states_lock
from ..models import Conversation


def capacity_lock(*, user: User | None) -> None:
    """Take the agent's assignment-state row lock (before the conversation's): nothing for
    supervisors, admins or nobody."""
    if user is not None and user.is_agent:
        agent_states_lock(user_ids=[user.pk])


def capacity_check(
    *, conversation: Conversation, actor: User, to_user: User, over_capacity: bool = False
) -> bool:
    """May ``to_user`` be given the (locked) ``conversation`` now? True when it takes them past
    their capacity by the actor's explicit leave; ``Conflict`` (``at_capacity``) when they have
    no room and nobody who may allowed it; ``NotPermitted`` when an agent asks to go past it.
    Call :func:`capacity_lock` first, in the same transaction."""
    if over_capacity and not actor.sees_everything:
        raise NotPermitted(_("Only supervisors and admins give an agent more than their capacity."))
    if not to_user.is_agent or (
        conversation.assigned_to_id == to_user.pk and not conversation.is_closed
    ):
        return False  # not bound, or not one more open conversation for them
    load = selectors.agent_open_counts(user_ids=[to_user.pk]).get(to_user.pk, 0)
    if load < to_user.max_conversations:
        return False
    if over_capacity:
        return True
    numbers = {"count": load, "limit": to_user.max_conversations, "name": to_user.name}
    if to_user.pk == actor.pk:
        message = ngettext(
            "You already have %(count)s open conversation, your limit of %(limit)s: close or "
            "transfer it first, or ask a supervisor to assign this one to you.",
            "You already have %(count)s open conversations, your limit of %(limit)s: close or "
            "transfer one first, or ask a supervisor to assign this one to you.",
            load,
        )
    elif actor.sees_everything:
        message = ngettext(
            "%(name)s already has %(count)s open conversation, their limit of %(limit)s: "
            "choose someone else, the department's queue, or assign it anyway.",
            "%(name)s already has %(count)s open conversations, their limit of %(limit)s: "
            "choose someone else, the department's queue, or assign it anyway.",
            load,
        )
    else:
        message = ngettext(
            "%(name)s already has %(count)s open conversation, their limit of %(limit)s: "
            "transfer it to the department's queue, or ask a supervisor.",
            "%(name)s already has %(count)s open conversations, their limit of %(limit)s: "
            "transfer it to the department's queue, or ask a supervisor.",
            load,
        )
    raise Conflict(message % numbers, code=ConversationErrorCode.AT_CAPACITY)
