"""Wake-ups cost an enqueue nothing when no worker waits for one.

Enqueue now sends its NOTIFY itself, from its INSERT statement, and only while a
worker of that backend is idle (``DBWorker.waiting``): a notification is work
for the database at every commit, and busy workers don't need one.  The trigger
of 0004 stays for the other ways a row becomes NEW (retry, requeue, released
claims), which are rare: it now fires on UPDATE only.
"""

from django.db import migrations, models

CHANNEL = "django_tasks"  # django_tasks.backends.database.worker.NOTIFY_CHANNEL
FUNCTION = "django_tasks_database_notify"
TRIGGER = "django_tasks_database_notify"
READY = "NEW.status = 'NEW' AND (NEW.run_after IS NULL OR NEW.run_after <= now())"


def _recreate_trigger(apps, schema_editor, events):
    if schema_editor.connection.vendor != "postgresql":
        return
    model = apps.get_model("django_tasks_database", "DBTaskResult")
    table = schema_editor.quote_name(model._meta.db_table)
    schema_editor.execute(f"DROP TRIGGER IF EXISTS {TRIGGER} ON {table}")
    schema_editor.execute(
        f"CREATE TRIGGER {TRIGGER} AFTER {events} ON {table} FOR EACH ROW"
        f" WHEN ({READY}) EXECUTE FUNCTION {FUNCTION}()"
    )


def update_only(apps, schema_editor):
    _recreate_trigger(apps, schema_editor, "UPDATE OF status")


def insert_or_update(apps, schema_editor):
    _recreate_trigger(apps, schema_editor, "INSERT OR UPDATE OF status")


class Migration(migrations.Migration):
    dependencies = [
        ("django_tasks_database", "0004_notify_trigger"),
    ]

    operations = [
        migrations.AddField(
            model_name="dbworker",
            name="waiting",
            field=models.BooleanField(default=False, verbose_name="waiting for tasks"),
        ),
        migrations.RunPython(update_only, insert_or_update),
    ]
