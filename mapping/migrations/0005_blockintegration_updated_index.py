# This migration added the index on the integration decisions' updated_at (the overview tiles'
# version reads MAX(updated_at) per request). The model is the product app's now, and its 0001
# makes the table with the index where mapping 0003 and this migration did not (see 0003).

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("mapping", "0004_campaign_members"),
    ]

    operations = []
