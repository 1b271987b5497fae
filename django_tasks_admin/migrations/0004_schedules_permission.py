# The permission to disable, enable and run recurring tasks (the Schedules page).

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('django_tasks_admin', '0003_cancel_permission_bulk_action'),
    ]

    operations = [
        migrations.AlterModelOptions(
            name='taskdashboard',
            options={
                'default_permissions': (),
                'permissions': [('retry_taskresult', 'Can retry task results'), ('prune_taskresult', 'Can prune task results'), ('cancel_taskresult', 'Can cancel waiting task results'), ('manage_schedules', 'Can disable, enable and run schedules now')],
                'verbose_name': 'tasks dashboard',
                'verbose_name_plural': 'tasks dashboard',
            },
        ),
    ]
