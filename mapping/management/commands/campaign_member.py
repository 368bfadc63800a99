"""``manage.py campaign_member add|remove|list CAMPAIGN [USERNAME ...]``: a campaign's leads."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from mapping.models import Campaign, CampaignMember
from mapping.services.members import (
    CampaignMemberError,
    campaign_members_add,
    campaign_members_remove,
)


class Command(BaseCommand):
    help = (
        "Add leads to a campaign, remove them, or list them. A lead sees and manages only the "
        "campaigns they are a member of; admins see all."
    )

    def add_arguments(self, parser):
        parser.add_argument("action", choices=["add", "remove", "list"])
        parser.add_argument("campaign", help="campaign slug")
        parser.add_argument("usernames", nargs="*", help="the leads (add, remove)")

    def handle(self, *args, **opts):
        try:
            campaign = Campaign.objects.get(slug=opts["campaign"])
        except Campaign.DoesNotExist as e:
            raise CommandError(f"no campaign {opts['campaign']!r}") from e
        if opts["action"] == "list":
            for name in (
                CampaignMember.objects.filter(campaign=campaign)
                .order_by("user__username")
                .values_list("user__username", flat=True)
            ):
                self.stdout.write(name)
            return
        if not opts["usernames"]:
            raise CommandError(f"name the leads to {opts['action']}")
        found = {
            u.get_username(): u
            for u in get_user_model().objects.filter(username__in=opts["usernames"])
        }
        missing = [n for n in opts["usernames"] if n not in found]
        if missing:
            raise CommandError(f"no user called {', '.join(map(repr, missing))}; nothing changed")
        users = [found[n] for n in opts["usernames"]]
        if opts["action"] == "add":
            try:
                changed = campaign_members_add(campaign=campaign, users=users)
            except CampaignMemberError as e:
                raise CommandError(f"{e}; nothing changed") from e
            words = ("already a member of", "added to")
        else:
            changed = campaign_members_remove(campaign=campaign, users=users)
            words = ("was not a member of", "removed from")
        for name, did in zip(opts["usernames"], changed, strict=True):
            self.stdout.write(f"{name} {words[did]} {campaign.slug}")
