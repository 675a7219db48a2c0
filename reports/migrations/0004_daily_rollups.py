"""The daily roll-ups the stats read for whole days (docs/reports.md, "Daily roll-ups"); filled
by the next migration (once their unique constraints, deferred to this migration's end, exist)."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('reports', '0003_stats_columns'),
    ]

    operations = [
        migrations.CreateModel(
            name='DailyAgentRollup',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('created_at', models.DateTimeField(auto_now_add=True, db_index=True, verbose_name='created at')),
                ('updated_at', models.DateTimeField(auto_now=True, verbose_name='updated at')),
                ('day', models.DateField(verbose_name='day')),
                ('agent', models.PositiveBigIntegerField(verbose_name='agent id')),
                ('department', models.PositiveBigIntegerField(verbose_name='department id (0: none)')),
                ('status', models.CharField(choices=[('bot', 'With the bot'), ('pending', 'Waiting in queue'), ('open', 'Open'), ('closed', 'Closed')], max_length=10, verbose_name='status')),
                ('conversations', models.PositiveIntegerField(db_default=0)),
                ('segments', models.PositiveIntegerField(db_default=0)),
                ('first_reply_seconds_sum', models.FloatField(null=True)),
                ('first_reply_seconds_n', models.PositiveIntegerField(db_default=0)),
                ('business_first_reply_seconds_sum', models.FloatField(null=True)),
                ('business_first_reply_seconds_n', models.PositiveIntegerField(db_default=0)),
                ('seconds_sum', models.FloatField(null=True)),
                ('seconds_n', models.PositiveIntegerField(db_default=0)),
                ('business_seconds_sum', models.FloatField(null=True)),
                ('business_seconds_n', models.PositiveIntegerField(db_default=0)),
                ('messages_in', models.PositiveIntegerField(db_default=0)),
                ('messages_out', models.PositiveIntegerField(db_default=0)),
                ('transfers', models.PositiveIntegerField(db_default=0)),
                ('csat_sum', models.PositiveIntegerField(null=True)),
                ('csat_responses', models.PositiveIntegerField(db_default=0)),
                ('csat_1', models.PositiveIntegerField(db_default=0)),
                ('csat_2', models.PositiveIntegerField(db_default=0)),
                ('csat_3', models.PositiveIntegerField(db_default=0)),
                ('csat_4', models.PositiveIntegerField(db_default=0)),
                ('csat_5', models.PositiveIntegerField(db_default=0)),
            ],
            options={
                'verbose_name': 'daily agent roll-up',
                'verbose_name_plural': 'daily agent roll-ups',
                'ordering': ['day', 'agent', 'department', 'status'],
                'constraints': [models.UniqueConstraint(fields=('day', 'agent', 'department', 'status'), name='report_daily_agent_one_per_key')],
            },
        ),
        migrations.CreateModel(
            name='DailyRollup',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('created_at', models.DateTimeField(auto_now_add=True, db_index=True, verbose_name='created at')),
                ('updated_at', models.DateTimeField(auto_now=True, verbose_name='updated at')),
                ('day', models.DateField(verbose_name='day')),
                ('department', models.PositiveBigIntegerField(verbose_name='department id (0: none)')),
                ('status', models.CharField(choices=[('bot', 'With the bot'), ('pending', 'Waiting in queue'), ('open', 'Open'), ('closed', 'Closed')], max_length=10, verbose_name='status')),
                ('total', models.PositiveIntegerField(db_default=0)),
                ('bot_seconds_sum', models.FloatField(null=True)),
                ('bot_seconds_n', models.PositiveIntegerField(db_default=0)),
                ('queue_wait_seconds_sum', models.FloatField(null=True)),
                ('queue_wait_seconds_n', models.PositiveIntegerField(db_default=0)),
                ('first_response_seconds_sum', models.FloatField(null=True)),
                ('first_response_seconds_n', models.PositiveIntegerField(db_default=0)),
                ('handling_seconds_sum', models.FloatField(null=True)),
                ('handling_seconds_n', models.PositiveIntegerField(db_default=0)),
                ('resolution_seconds_sum', models.FloatField(null=True)),
                ('resolution_seconds_n', models.PositiveIntegerField(db_default=0)),
                ('business_bot_seconds_sum', models.FloatField(null=True)),
                ('business_bot_seconds_n', models.PositiveIntegerField(db_default=0)),
                ('business_queue_wait_seconds_sum', models.FloatField(null=True)),
                ('business_queue_wait_seconds_n', models.PositiveIntegerField(db_default=0)),
                ('business_first_response_seconds_sum', models.FloatField(null=True)),
                ('business_first_response_seconds_n', models.PositiveIntegerField(db_default=0)),
                ('business_handling_seconds_sum', models.FloatField(null=True)),
                ('business_handling_seconds_n', models.PositiveIntegerField(db_default=0)),
                ('business_resolution_seconds_sum', models.FloatField(null=True)),
                ('business_resolution_seconds_n', models.PositiveIntegerField(db_default=0)),
                ('messages', models.PositiveIntegerField(db_default=0)),
                ('transfers', models.PositiveIntegerField(db_default=0)),
                ('csat_sum', models.PositiveIntegerField(null=True)),
                ('csat_responses', models.PositiveIntegerField(db_default=0)),
                ('csat_1', models.PositiveIntegerField(db_default=0)),
                ('csat_2', models.PositiveIntegerField(db_default=0)),
                ('csat_3', models.PositiveIntegerField(db_default=0)),
                ('csat_4', models.PositiveIntegerField(db_default=0)),
                ('csat_5', models.PositiveIntegerField(db_default=0)),
            ],
            options={
                'verbose_name': 'daily roll-up',
                'verbose_name_plural': 'daily roll-ups',
                'ordering': ['day', 'department', 'status'],
                'constraints': [models.UniqueConstraint(fields=('day', 'department', 'status'), name='report_daily_one_per_key')],
            },
        ),
    ]
