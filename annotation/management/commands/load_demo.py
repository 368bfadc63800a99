"""``manage.py load_demo``: the synthetic demo campaign, users with printed passwords, samples."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from annotation.services.demo import demo_load


class Command(BaseCommand):
    help = (
        "Create the demo: real boundaries and statistics, a few hundred blocks in three "
        "provinces with synthetic Mapbox/Google imagery, users annotator/lead/admin with new "
        "passwords, and labelled sample blocks. The remaining images are fetched by the "
        "Celery worker (`manage.py imagery_fetch --campaign demo-2020 --source mapbox "
        "--source google`, which `make demo` starts)."
    )

    def handle(self, *args, **opts):
        report = demo_load()
        self.stdout.write(
            f"demo campaign {report.campaign}: {report.blocks} blocks, {report.images} images, "
            f"{report.samples} labelled sample blocks"
        )
        self.stdout.write("logins (new passwords on every load_demo):")
        for user, password in report.logins.items():
            self.stdout.write(f"  {user:10s} {password}")
