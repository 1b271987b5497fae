"""PostgreSQL only: NOTIFY idle workers when a task becomes ready.

An AFTER INSERT / UPDATE OF status trigger on the task table calls
``pg_notify('django_tasks', '<backend>\\n<queue>')`` for rows that are NEW and ready
now.  PostgreSQL delivers the notification when the enqueuing transaction
commits (never on rollback) and folds duplicates within one transaction, so an
enqueue stays one INSERT and a bulk enqueue sends one notification per queue.
Workers LISTEN and wake at once; polling remains the fallback.  Other databases
get nothing.
"""

from django.db import migrations

CHANNEL = "django_tasks"  # django_tasks.backends.database.worker.NOTIFY_CHANNEL
FUNCTION = "django_tasks_database_notify"
TRIGGER = "django_tasks_database_notify"


def _table(apps, schema_editor):
    model = apps.get_model("django_tasks_database", "DBTaskResult")
    return schema_editor.quote_name(model._meta.db_table)


def create_trigger(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(
        f"""
        CREATE OR REPLACE FUNCTION {FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('{CHANNEL}', left(NEW.backend_name || E'\\n' || NEW.queue_name, 7999));
            RETURN NULL;
        END
        $$
        """
    )
    schema_editor.execute(
        f"""
        CREATE TRIGGER {TRIGGER}
        AFTER INSERT OR UPDATE OF status ON {_table(apps, schema_editor)}
        FOR EACH ROW
        WHEN (NEW.status = 'NEW' AND (NEW.run_after IS NULL OR NEW.run_after <= now()))
        EXECUTE FUNCTION {FUNCTION}()
        """
    )


def drop_trigger(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(f"DROP TRIGGER IF EXISTS {TRIGGER} ON {_table(apps, schema_editor)}")
    schema_editor.execute(f"DROP FUNCTION IF EXISTS {FUNCTION}()")


class Migration(migrations.Migration):
    dependencies = [
        ("django_tasks_database", "0003_claim_any_queue_index"),
    ]

    operations = [
        migrations.RunPython(create_trigger, drop_trigger),
    ]
