"""Indexes the dashboard's pages read as ranges (issue 14: the dashboard at a million rows).

(enqueued_at, id) replaces (enqueued_at): the default sort's cursor, a row-value
comparison on both columns, is one range of it, and no sort is needed for ties.
(finished_at, id) serves the sort by finished_at, which had no index of its own.
dtdb_retrying_idx (partial: NEW rows after a failed attempt) serves the "waiting to
retry" filter, which otherwise reads every waiting row.
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("django_tasks_database", "0009_worker_memory"),
    ]

    operations = [
        migrations.RemoveIndex(
            model_name="dbtaskresult",
            name="dtdb_enqueued_idx",
        ),
        migrations.AddIndex(
            model_name="dbtaskresult",
            index=models.Index(fields=["enqueued_at", "id"], name="dtdb_enqueued_id_idx"),
        ),
        migrations.AddIndex(
            model_name="dbtaskresult",
            index=models.Index(fields=["finished_at", "id"], name="dtdb_finished_id_idx"),
        ),
        migrations.AddIndex(
            model_name="dbtaskresult",
            index=models.Index(
                condition=models.Q(("status", "NEW"), models.Q(("attempts", []), _negated=True)),
                fields=["enqueued_at"],
                name="dtdb_retrying_idx",
            ),
        ),
    ]
