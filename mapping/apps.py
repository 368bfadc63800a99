from django.apps import AppConfig

from croplayer_site.jobs import job_kind_register


class MappingConfig(AppConfig):
    name = "mapping"
    verbose_name = "Mapping: campaigns, blocks and imagery"

    def ready(self) -> None:
        """Register the app's job kinds (fetch runs) with ``croplayer_site.jobs``."""
        # models are importable only once the apps are ready
        from mapping.jobs import FETCH

        job_kind_register(FETCH)
