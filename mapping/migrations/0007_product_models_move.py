# The comparison models moved to the ``product`` app (learning/product). State only: the tables
# stay as they are, and product 0001 takes them over. (The integration and export models left
# mapping's history altogether: see 0003.)

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("mapping", "0006_official_statistics_county_demo"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.DeleteModel(name="ProductComparison"),
                migrations.DeleteModel(name="CroplandProduct"),
            ],
            database_operations=[],
        ),
    ]
