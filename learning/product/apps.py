"""The final product's Django app (label ``product``), on top of the rest of ``learning``."""

from django.apps import AppConfig

from croplayer_site.jobs import job_kind_register


class ProductConfig(AppConfig):
    name = "learning.product"
    label = "product"
    verbose_name = "Product: integration, exports and comparison"

    def ready(self) -> None:
        """Register the app's job kinds (exports and comparisons) with ``croplayer_site.jobs``."""
        # models are importable only once the apps are ready
        from learning.product.jobs import COMPARE, EXPORT

        job_kind_register(COMPARE)
        job_kind_register(EXPORT)
