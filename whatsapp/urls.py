"""Pages of the WhatsApp channel: ``/sandbox/`` and authorised media ``/media/messages/<id>``."""

from django.urls import path

from . import views

app_name = "whatsapp"

urlpatterns = [
    path("sandbox/", views.sandbox, name="sandbox"),
    path("media/messages/<int:pk>", views.media_serve, name="media"),
]
