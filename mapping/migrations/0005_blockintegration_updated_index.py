# The overview tiles' version reads MAX(updated_at) of the integration decisions per request.

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("mapping", "0004_campaign_members"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="blockintegration",
            index=models.Index(fields=["updated_at"], name="blockintegration_updated"),
        ),
    ]
