from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("reading", "0005_reads_append_only"),
    ]

    operations = [
        migrations.AddField(
            model_name="reader",
            name="role",
            field=models.CharField(
                blank=True,
                choices=[
                    ("attending", "Attending / consultant"),
                    ("fellow", "Fellow"),
                    ("resident", "Resident / registrar"),
                    ("other", "Other"),
                ],
                max_length=20,
            ),
        ),
    ]
