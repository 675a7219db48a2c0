"""The WhatsApp channel's writes: intake, inbound processing, outbound sender, media, templates.

Interfaces (the webhook view, Celery tasks, management commands, the admin, the sandbox page) call
the functions exported by these modules; nothing else in the app holds business logic.
"""
