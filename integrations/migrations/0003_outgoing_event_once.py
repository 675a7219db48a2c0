"""Each event's data stored once (``OutgoingEvent``), whatever the number of subscribers; the
deliveries keep only what changes per attempt. The claim index no longer holds
``claimed_until`` (a claim is then a HOT update) and the delivery table leaves room on its
pages for those updates (fillfactor, PostgreSQL only)."""

import json

import django.db.models.deletion
from django.db import migrations, models
from django.utils import timezone


def _dumps(data):
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def events_from_payloads(apps, schema_editor):
    """Every existing delivery gets the event its payload held (the payload goes next)."""
    Delivery = apps.get_model("integrations", "WebhookDelivery")
    Event = apps.get_model("integrations", "OutgoingEvent")
    using = schema_editor.connection.alias  # the database being migrated, whatever the router says
    now = timezone.now()
    batch = []
    for delivery in Delivery.objects.using(using).only("pk", "payload", "event").iterator(chunk_size=2000):
        payload = delivery.payload or {}
        batch.append(
            (
                delivery.pk,
                Event(
                    type=payload.get("type") or delivery.event,
                    occurred_at=str(payload.get("created_at") or ""),
                    data=_dumps(payload.get("data")),
                    created_at=now,
                    updated_at=now,
                ),
            )
        )
        if len(batch) >= 2000:
            _link(Delivery, Event, batch, using)
            batch = []
    _link(Delivery, Event, batch, using)


def _link(Delivery, Event, batch, using):
    if not batch:
        return
    Event.objects.using(using).bulk_create([event for _, event in batch])
    for pk, event in batch:
        Delivery.objects.using(using).filter(pk=pk).update(outgoing_event_id=event.pk)


def fillfactor(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("ALTER TABLE integrations_webhookdelivery SET (fillfactor = 80)")


class Migration(migrations.Migration):
    dependencies = [
        ("integrations", "0002_delivery_claim_id"),
    ]

    operations = [
        migrations.CreateModel(
            name="OutgoingEvent",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("created_at", models.DateTimeField(auto_now_add=True, db_index=True, verbose_name="created at")),
                ("updated_at", models.DateTimeField(auto_now=True, verbose_name="updated at")),
                ("type", models.CharField(max_length=64, verbose_name="type")),
                ("occurred_at", models.CharField(max_length=40, verbose_name="occurred at")),
                ("data", models.TextField(verbose_name="data")),
            ],
            options={
                "verbose_name": "outgoing event",
                "verbose_name_plural": "outgoing events",
                "ordering": ["-created_at", "-id"],
            },
        ),
        migrations.AddField(
            model_name="webhookdelivery",
            name="outgoing_event",
            field=models.ForeignKey(
                db_constraint=False,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="deliveries",
                to="integrations.outgoingevent",
                verbose_name="event sent",
            ),
        ),
        migrations.RunPython(events_from_payloads, migrations.RunPython.noop, elidable=True),
        migrations.AlterField(
            model_name="webhookdelivery",
            name="outgoing_event",
            field=models.ForeignKey(
                db_constraint=False,
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="deliveries",
                to="integrations.outgoingevent",
                verbose_name="event sent",
            ),
        ),
        migrations.RemoveField(model_name="webhookdelivery", name="payload"),
        migrations.RemoveIndex(model_name="webhookdelivery", name="webhook_delivery_claims_idx"),
        migrations.AddIndex(
            model_name="webhookdelivery",
            index=models.Index(
                condition=models.Q(("status", "pending")),
                fields=["subscription", "next_attempt_at"],
                name="webhook_delivery_pending_idx",
            ),
        ),
        migrations.RunPython(fillfactor, migrations.RunPython.noop),
    ]
