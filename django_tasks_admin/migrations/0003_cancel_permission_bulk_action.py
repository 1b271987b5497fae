# The cancel permission, and background jobs that cancel rather than retry.

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('django_tasks_admin', '0002_rename_taskresult_taskdashboard'),
    ]

    operations = [
        migrations.AlterModelOptions(
            name='taskdashboard',
            options={
                'default_permissions': (),
                'permissions': [('retry_taskresult', 'Can retry task results'), ('prune_taskresult', 'Can prune task results'), ('cancel_taskresult', 'Can cancel waiting task results')],
                'verbose_name': 'tasks dashboard',
                'verbose_name_plural': 'tasks dashboard',
            },
        ),
        migrations.AddField(
            model_name='bulkretry',
            name='action',
            field=models.CharField(choices=[('retry', 'retry'), ('cancel', 'cancel')], default='retry', max_length=8, verbose_name='action'),
        ),
    ]
