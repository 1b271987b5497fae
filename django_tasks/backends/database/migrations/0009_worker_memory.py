from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("django_tasks_database", "0008_schedules"),
    ]

    operations = [
        migrations.AddField(
            model_name="dbworker",
            name="rss_bytes",
            field=models.BigIntegerField(
                blank=True, null=True, verbose_name="resident memory (bytes)"
            ),
        ),
    ]
