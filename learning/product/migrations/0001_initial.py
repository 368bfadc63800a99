# The final product's models, moved here from the ``mapping`` app with their tables, which keep
# their names. The comparison tables were made by mapping 0002 and are taken over (state only).
# The integration and export tables refer to learning's models; mapping 0003 and 0005 made them
# until mapping stopped depending on learning (that dependency made the migration graph run
# mapping 0002 -> learning 0001 -> mapping 0003). A database migrated before that has them (same
# columns, constraints and indexes); a new one gets them here, made from this state. The content
# types (admin log, permissions) follow the models to this app.

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

MOVED = ["croplandproduct", "productcomparison", "blockintegration", "productexport"]


def content_types_move(apps, schema_editor, *, old="mapping", new="product"):
    ContentType = apps.get_model("contenttypes", "ContentType")
    db = schema_editor.connection.alias
    ContentType.objects.using(db).filter(app_label=new, model__in=MOVED).delete()
    ContentType.objects.using(db).filter(app_label=old, model__in=MOVED).update(app_label=new)


def content_types_back(apps, schema_editor):
    content_types_move(apps, schema_editor, old="product", new="mapping")


def learning_tables_create(apps, schema_editor):
    """The integration and export tables, where mapping 0003/0005 did not make them already."""
    existing = set(schema_editor.connection.introspection.table_names())
    for name in ("BlockIntegration", "ProductExport"):
        model = apps.get_model("product", name)
        if model._meta.db_table not in existing:
            schema_editor.create_model(model)


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('contenttypes', '0002_remove_content_type_name'),
        ('learning', '0001_initial'),
        ('mapping', '0007_product_models_move'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name='CroplandProduct',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('name', models.SlugField(help_text='e.g. esa-worldcover-2020', max_length=80)),
                        ('description', models.CharField(blank=True, max_length=300)),
                        ('path', models.CharField(help_text='Relative to DATA_DIR', max_length=500)),
                        ('original_name', models.CharField(blank=True, max_length=300)),
                        ('checksum', models.CharField(max_length=64)),
                        ('cropland_classes', models.JSONField(help_text='Raster values meaning cropland: {"values": [40], "ranges": [[lo, hi]]}')),
                        ('crs', models.TextField(help_text="The raster's CRS as text (EPSG code or WKT)")),
                        ('width', models.PositiveIntegerField()),
                        ('height', models.PositiveIntegerField()),
                        ('dtype', models.CharField(max_length=20)),
                        ('resolution_x', models.FloatField()),
                        ('resolution_y', models.FloatField()),
                        ('bounds', models.JSONField(help_text='west, south, east, north in degrees')),
                        ('nodata', models.FloatField(blank=True, null=True)),
                        ('sample_values', models.JSONField(blank=True, default=list, help_text='Distinct values found in a sample of the raster')),
                        ('created_at', models.DateTimeField(auto_now_add=True)),
                        ('campaign', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='products', to='mapping.campaign')),
                        ('uploaded_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                    ],
                    options={
                        'db_table': 'mapping_croplandproduct',
                        'ordering': ['campaign_id', 'name'],
                        'constraints': [models.UniqueConstraint(fields=('campaign', 'name'), name='croplandproduct_campaign_name')],
                    },
                ),
                migrations.CreateModel(
                    name='ProductComparison',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('final_map', models.JSONField(default=dict, help_text='Which final map was compared: kind and reference')),
                        ('provinces', models.JSONField(blank=True, default=list, help_text='Province adcodes')),
                        ('status', models.CharField(choices=[('queued', 'Queued'), ('running', 'Running'), ('done', 'Done'), ('failed', 'Failed'), ('cancelled', 'Cancelled')], default='queued', max_length=10)),
                        ('done', models.PositiveIntegerField(default=0)),
                        ('total', models.PositiveIntegerField(default=0)),
                        ('results', models.JSONField(blank=True, default=dict)),
                        ('folder', models.CharField(blank=True, help_text='Relative to DATA_DIR', max_length=500)),
                        ('failure_reason', models.TextField(blank=True)),
                        ('created_at', models.DateTimeField(auto_now_add=True)),
                        ('started_at', models.DateTimeField(blank=True, null=True)),
                        ('finished_at', models.DateTimeField(blank=True, null=True)),
                        ('heartbeat_at', models.DateTimeField(blank=True, null=True)),
                        ('campaign', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='comparisons', to='mapping.campaign')),
                        ('product', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='comparisons', to='product.croplandproduct')),
                        ('requested_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                    ],
                    options={
                        'db_table': 'mapping_productcomparison',
                        'ordering': ['-created_at'],
                    },
                ),
                migrations.CreateModel(
                    name='BlockIntegration',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('decision', models.CharField(choices=[('neither', 'Neither'), ('only_mapbox', 'Only Mapbox'), ('only_google', 'Only Google'), ('merge_both', 'Merge both')], max_length=15)),
                        ('source', models.CharField(choices=[('model', 'Integration model'), ('lead', "Lead's decision")], default='model', max_length=10)),
                        ('probability', models.FloatField(blank=True, help_text="The model's probability of the decision in force", null=True)),
                        ('model_decision', models.CharField(blank=True, choices=[('neither', 'Neither'), ('only_mapbox', 'Only Mapbox'), ('only_google', 'Only Google'), ('merge_both', 'Merge both')], help_text='What the integration model decided (kept when a lead overrides it)', max_length=15)),
                        ('model_probability', models.FloatField(blank=True, null=True)),
                        ('probabilities', models.JSONField(blank=True, default=dict, help_text="The model's probability of each decision")),
                        ('overridden_at', models.DateTimeField(blank=True, null=True)),
                        ('updated_at', models.DateTimeField(auto_now=True)),
                        ('block', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, related_name='integration', to='mapping.block')),
                        ('google_prediction', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='learning.blockprediction')),
                        ('mapbox_prediction', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='learning.blockprediction')),
                        ('model_version', models.ForeignKey(blank=True, help_text='The integration model', null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='learning.modelversion')),
                        ('overridden_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                    ],
                    options={
                        'db_table': 'mapping_blockintegration',
                        'indexes': [models.Index(fields=['updated_at'], name='blockintegration_updated')],
                        'constraints': [models.CheckConstraint(condition=models.Q(('decision__in', ['neither', 'only_mapbox', 'only_google', 'merge_both'])), name='blockintegration_decision_valid')],
                    },
                ),
                migrations.CreateModel(
                    name='ProductExport',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('kind', models.CharField(choices=[('province', 'Province product (COG, GeoPackage, county shapefiles)'), ('national_af', 'National area-fraction map (GeoTIFF, PNG)')], max_length=12)),
                        ('status', models.CharField(choices=[('queued', 'Queued'), ('running', 'Running'), ('done', 'Done'), ('failed', 'Failed'), ('cancelled', 'Cancelled')], default='queued', max_length=10)),
                        ('stage', models.CharField(blank=True, max_length=40)),
                        ('done', models.PositiveIntegerField(default=0)),
                        ('total', models.PositiveIntegerField(default=0)),
                        ('folder', models.CharField(blank=True, help_text='Relative to DATA_DIR', max_length=500)),
                        ('files', models.JSONField(blank=True, default=dict, help_text='File name -> size and sha256')),
                        ('summary', models.JSONField(blank=True, default=dict)),
                        ('failure_reason', models.TextField(blank=True)),
                        ('created_at', models.DateTimeField(auto_now_add=True)),
                        ('started_at', models.DateTimeField(blank=True, null=True)),
                        ('finished_at', models.DateTimeField(blank=True, null=True)),
                        ('heartbeat_at', models.DateTimeField(blank=True, null=True)),
                        ('campaign', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='exports', to='mapping.campaign')),
                        ('province', models.ForeignKey(blank=True, limit_choices_to={'level': 'province'}, null=True, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='mapping.adminunit')),
                        ('requested_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                    ],
                    options={
                        'db_table': 'mapping_productexport',
                        'ordering': ['-created_at'],
                        'constraints': [models.CheckConstraint(condition=models.Q(('kind', 'national_af'), ('province__isnull', False), _connector='OR'), name='productexport_province_needs_province')],
                    },
                ),
            ],
            database_operations=[],
        ),
        # Not undone on the way back: a database that had them from mapping 0003 keeps them too.
        migrations.RunPython(learning_tables_create, migrations.RunPython.noop),
        migrations.RunPython(content_types_move, content_types_back),
    ]
