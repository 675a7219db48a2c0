"""Errors raised by services; each interface (API, console, admin) turns them into clear answers."""


class ServiceError(Exception):
    """A requested change cannot be made; ``message`` is safe to show to the user."""

    default_code = "invalid"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code


class NotPermitted(ServiceError):  # noqa: N818 - reads better at call sites
    """The actor may see the object but not perform this action on it."""

    default_code = "permission_denied"


class Conflict(ServiceError):  # noqa: N818 - reads better at call sites
    """The change clashes with the object's current state (an API answers 409)."""

    default_code = "conflict"
