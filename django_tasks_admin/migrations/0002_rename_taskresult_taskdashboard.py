# The permissions-only proxy was called TaskResult; its permission codenames stay the
# same, and contenttypes renames its content type, so granted permissions still apply.

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('django_tasks_admin', '0001_initial'),
    ]

    operations = [
        migrations.RenameModel(
            old_name='TaskResult',
            new_name='TaskDashboard',
        ),
        migrations.AlterModelOptions(
            name='taskdashboard',
            options={
                'default_permissions': (),
                'permissions': [('retry_taskresult', 'Can retry task results'), ('prune_taskresult', 'Can prune task results')],
                'verbose_name': 'tasks dashboard',
                'verbose_name_plural': 'tasks dashboard',
            },
        ),
    ]
