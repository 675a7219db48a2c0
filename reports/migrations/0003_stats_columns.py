"""What the stats read without joins, sorts or distinct counts (docs/reports.md, Performance):
the conversation's status on its roll-up, filled from the conversations; the agent's first segment
in each conversation marked, filled from the segments; the answered CSAT indexed with what the
agents' CSAT reads."""

from django.db import migrations, models

# A correlated subquery: the same SQL on PostgreSQL and SQLite (make test).
FILL = """
UPDATE reports_conversationmetrics SET status = (
    SELECT c.status FROM conversations_conversation AS c
    WHERE c.id = reports_conversationmetrics.conversation_id
)
"""

# The first segment of each agent in each conversation (in the stats' order of segments).
FILL_AGENT_FIRST = """
UPDATE reports_segment SET agent_first = TRUE WHERE id IN (
    SELECT id FROM (
        SELECT id, row_number() OVER (
            PARTITION BY conversation_id, agent_id ORDER BY started_at, id
        ) AS n
        FROM reports_segment WHERE kind = 'agent' AND agent_id IS NOT NULL
    ) AS ranked
    WHERE n = 1
)
"""


class Migration(migrations.Migration):
    dependencies = [
        ("reports", "0002_goal"),
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
        migrations.AddField(
            model_name="segment",
            name="agent_first",
            field=models.BooleanField(
                default=False, verbose_name="the agent's first in the conversation"
            ),
        ),
        migrations.RunSQL(FILL_AGENT_FIRST, migrations.RunSQL.noop, elidable=True),
        migrations.AddIndex(
            model_name="conversationmetrics",
            index=models.Index(
                condition=models.Q(("csat_score__isnull", False)),
                fields=["opened_at", "last_agent", "csat_score"],
                name="report_metrics_csat_idx",
            ),
        ),
    ]
