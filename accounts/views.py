"""Session sign-in for the console: login, logout, password change, language (contract §7)."""

from typing import Any

from django.conf import settings
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse_lazy
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_POST

from common.api import client_ip
from common.exceptions import ServiceError

from . import services
from .login_throttle import (
    login_failure_record,
    login_refusal_audit,
    login_success_record,
    login_wait_seconds,
)

LANGUAGE_COOKIE_MAX_AGE = 365 * 24 * 60 * 60  # remembered for a year, across browser restarts


class ThrottledLoginMixin:
    """Refuses a sign-in while this account has failed too often from this IP (or at all, past a
    much higher ceiling): see :mod:`accounts.login_throttle`. Used by both login forms."""

    via = "session"
    request: HttpRequest | None
    cleaned_data: dict[str, Any]
    retry_after = 0

    def clean(self) -> dict[str, Any]:
        email = str(self.cleaned_data.get("username") or "")
        ip = client_ip(self.request) if self.request is not None else None
        if email and (wait := login_wait_seconds(email=email, ip=ip)):
            self.retry_after = wait
            login_refusal_audit(email=email, ip=ip, via=self.via, wait=wait)
            minutes = max(1, round(wait / 60))
            raise ValidationError(
                ngettext(
                    "Too many failed sign-in attempts. Try again in %(minutes)d minute.",
                    "Too many failed sign-in attempts. Try again in %(minutes)d minutes.",
                    minutes,
                )
                % {"minutes": minutes},
                code="throttled",
            )
        try:
            cleaned: dict[str, Any] = super().clean()  # type: ignore[misc]
        except ValidationError:
            if email and self.cleaned_data.get("password"):
                login_failure_record(email=email, ip=ip)
            raise
        if email:
            login_success_record(email=email, ip=ip)
        return cleaned


class EmailAuthenticationForm(ThrottledLoginMixin, AuthenticationForm):
    """The stock form, labelled for e-mail sign-in (``User.USERNAME_FIELD`` is the e-mail)."""

    via = "console"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["username"].label = _("E-mail")
        self.fields["username"].widget.attrs.update(
            {"autocomplete": "email", "type": "email", "autofocus": True}
        )
        self.fields["password"].label = _("Password")


class LoginView(auth_views.LoginView):
    template_name = "accounts/login.html"
    authentication_form = EmailAuthenticationForm
    redirect_authenticated_user = True

    def form_invalid(self, form: AuthenticationForm) -> HttpResponse:
        response = super().form_invalid(form)
        if form.has_error(NON_FIELD_ERRORS, "throttled"):
            response.status_code = 429
            response["Retry-After"] = str(getattr(form, "retry_after", 60))
        return response


class AdminLoginForm(ThrottledLoginMixin, AdminAuthenticationForm):
    """``/admin/login/``: the admin's own form, throttled like the console's."""

    via = "admin"


class LogoutView(auth_views.LogoutView):
    pass


class PasswordChangeView(auth_views.PasswordChangeView):
    template_name = "accounts/password_change.html"
    success_url = reverse_lazy("accounts:password_change_done")


class PasswordChangeDoneView(auth_views.PasswordChangeDoneView):
    template_name = "accounts/password_change_done.html"


@require_POST
def language_switch(request: HttpRequest) -> HttpResponse:
    """Switch the interface language and remember it in a long-lived cookie."""
    language = request.POST.get("language", "")
    next_url = request.POST.get("next") or "/"
    if not url_has_allowed_host_and_scheme(
        next_url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        next_url = "/"
    response = HttpResponseRedirect(next_url)
    if language in dict(settings.LANGUAGES):
        response.set_cookie(
            settings.LANGUAGE_COOKIE_NAME,
            language,
            max_age=LANGUAGE_COOKIE_MAX_AGE,
            path=settings.LANGUAGE_COOKIE_PATH,
            domain=settings.LANGUAGE_COOKIE_DOMAIN,
            secure=settings.LANGUAGE_COOKIE_SECURE,
            httponly=settings.LANGUAGE_COOKIE_HTTPONLY,
            samesite=settings.LANGUAGE_COOKIE_SAMESITE,
        )
    return response


@require_POST
@login_required
def availability_switch(request: HttpRequest) -> HttpResponse:
    """The console's available/away switch (automatic assignment, contract §10): the htmx
    request gets the switch back, a plain form post goes back where it came from."""
    try:
        user = services.user_set_availability(
            user=request.user,  # type: ignore[arg-type]
            actor=request.user,  # type: ignore[arg-type]
            availability=request.POST.get("availability", ""),
        )
    except ServiceError as exc:
        return HttpResponseBadRequest(exc.message)
    if request.htmx:  # type: ignore[attr-defined]
        return render(request, "components/availability.html", {"user": user})
    next_url = request.POST.get("next") or "/"
    if not url_has_allowed_host_and_scheme(
        next_url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        next_url = "/"
    return HttpResponseRedirect(next_url)


@require_POST
@login_required
def notification_settings(request: HttpRequest) -> HttpResponse:
    """The console's sound and desktop notifications and the signature, on or off (the form
    swaps itself)."""
    user = services.user_set_notifications(
        user=request.user,  # type: ignore[arg-type]
        actor=request.user,  # type: ignore[arg-type]
        sound=request.POST.get("sound") == "on",
        desktop=request.POST.get("desktop") == "on",
        signature=request.POST.get("signature") == "on",
    )
    return render(request, "components/notify_settings.html", {"user": user, "saved": True})
