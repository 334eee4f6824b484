from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("prereads", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="aimodel",
            name="factory",
            field=models.CharField(
                blank=True,
                help_text="For the factory format: 'module:function' that builds the network.",
                max_length=200,
            ),
        ),
        migrations.AddField(
            model_name="preread",
            name="timings",
            field=models.JSONField(
                blank=True, default=dict, help_text="Milliseconds per stage (decode, forward, ...)."
            ),
        ),
    ]
