from django.apps import AppConfig

from croplayer_site.jobs import job_kind_register


class LearningConfig(AppConfig):
    name = "learning"
    verbose_name = "Learning: rounds, models and province status"

    def ready(self) -> None:
        """Register the app's job kinds (rounds) with ``croplayer_site.jobs``."""
        # models are importable only once the apps are ready
        from learning.jobs import ROUND

        job_kind_register(ROUND)
