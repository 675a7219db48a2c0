"""What every back-office page that writes through a service shares.

The admin's forms validate input; the write itself is a service call (``accounts.services``,
``departments.services``, ``botflows.services``...). A service may still refuse
(:class:`~common.exceptions.ServiceError`): then nothing was written, nothing is logged,
and the page comes back with the service's message instead of "changed successfully".
"""

from typing import Any

from django.contrib import messages
from django.contrib.admin import ModelAdmin
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect

from common.exceptions import ServiceError

_ERROR_ATTR = "_service_admin_error"


class ReadOnlyAdminMixin:
    """Written by services only: the back office may look, never add, edit or delete."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ServiceBackedAdminMixin(ModelAdmin):  # type: ignore[type-arg]
    """Use :meth:`run_service` inside ``save_model``/``delete_model``."""

    def run_service(self, request: HttpRequest, call: Any, /, **kwargs: Any) -> Any:
        """``call(**kwargs)``; a refusal is remembered for the response, ``None`` returned."""
        try:
            return call(**kwargs)
        except ServiceError as exc:
            setattr(request, _ERROR_ATTR, exc.message)
            return None

    @staticmethod
    def service_error(request: HttpRequest) -> str | None:
        return getattr(request, _ERROR_ATTR, None)

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        if self.service_error(request) is None:
            super().save_related(request, form, formsets, change)
            return
        for formset in formsets:  # nothing saved: what the change message reads is empty
            formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []

    def log_addition(self, request: HttpRequest, obj: Any, message: Any) -> Any:
        if self.service_error(request) is None:
            return super().log_addition(request, obj, message)
        return None

    def log_change(self, request: HttpRequest, obj: Any, message: Any) -> Any:
        if self.service_error(request) is None:
            return super().log_change(request, obj, message)
        return None

    def _refused(self, request: HttpRequest) -> HttpResponse | None:
        error = self.service_error(request)
        if error is None:
            return None
        self.message_user(request, error, messages.ERROR)
        return HttpResponseRedirect(request.get_full_path())

    def response_add(
        self, request: HttpRequest, obj: Any, post_url_continue: str | None = None
    ) -> HttpResponse:
        return self._refused(request) or super().response_add(request, obj, post_url_continue)

    def response_change(self, request: HttpRequest, obj: Any) -> HttpResponse:
        return self._refused(request) or super().response_change(request, obj)
