"""``/api/v1/webhooks/whatsapp`` (contract §5), with and without the trailing slash."""

from django.urls import path

from .apis import whatsapp_webhook

urlpatterns = [
    path("webhooks/whatsapp", whatsapp_webhook, name="whatsapp-webhook"),
    path("webhooks/whatsapp/", whatsapp_webhook),
]
