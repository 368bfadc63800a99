"""The final product's Django app (label ``product``), on top of the rest of ``learning``."""

from django.apps import AppConfig


class ProductConfig(AppConfig):
    name = "learning.product"
    label = "product"
    verbose_name = "Product: integration, exports and comparison"
