"""What a customer tapped: one reading of Meta's message object, for the bot, the survey and the
intake (the object as Meta delivers it, which is also what a message keeps in ``raw_payload``)."""

from typing import Any


def reply_choice(raw: Any) -> tuple[str, str]:
    """(id, title) of a tapped button, list row or template quick reply; ("", "") if none."""
    payload = raw if isinstance(raw, dict) else {}
    interactive = payload.get("interactive")
    if isinstance(interactive, dict):
        for kind in ("button_reply", "list_reply"):
            reply = interactive.get(kind)
            if isinstance(reply, dict) and reply.get("id"):
                return str(reply["id"]), str(reply.get("title") or "")
    button = payload.get("button")
    if isinstance(button, dict) and button.get("payload"):
        return str(button["payload"]), str(button.get("text") or "")
    return "", ""
