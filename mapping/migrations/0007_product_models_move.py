# The final product's models (comparison, integration, exports) moved to the ``product`` app
# (learning/product). State only: the tables stay as they are, and product 0001 takes them over.

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
                migrations.DeleteModel(name="BlockIntegration"),
                migrations.DeleteModel(name="ProductExport"),
            ],
            database_operations=[],
        ),
    ]
