"""The conversation's status on its roll-up (the stats count by it without joining the
conversations), filled from the conversations for the rows that exist."""

from django.db import migrations, models

# A correlated subquery: the same SQL on PostgreSQL and SQLite (make test).
FILL = """
UPDATE reports_conversationmetrics SET status = (
    SELECT c.status FROM conversations_conversation AS c
    WHERE c.id = reports_conversationmetrics.conversation_id
)
"""


class Migration(migrations.Migration):
    dependencies = [
        ("reports", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="conversationmetrics",
            name="status",
            field=models.CharField(
                choices=[
                    ("bot", "With the bot"),
                    ("pending", "Waiting in queue"),
                    ("open", "Open"),
                    ("closed", "Closed"),
                ],
                default="bot",
                max_length=10,
                verbose_name="status",
            ),
        ),
        migrations.RunSQL(FILL, migrations.RunSQL.noop, elidable=True),
    ]
