# This migration made the integration and export tables (BlockIntegration, ProductExport), which
# refer to learning's models, so mapping depended on learning (mapping 0002 -> learning 0001 ->
# mapping 0003). Those models are the product app's now (learning/product), and its 0001 makes
# the tables where this migration did not already make them: databases migrated before keep
# theirs, unchanged. Kept, empty, so that the applied history stays consistent.

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("mapping", "0002_products_comparisons"),
    ]

    operations = []
