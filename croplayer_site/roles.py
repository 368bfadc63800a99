"""The three roles as Django groups: annotator, lead, admin."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, Group

ANNOTATOR = "annotator"
LEAD = "lead"
ADMIN = "admin"
ROLES = (ANNOTATOR, LEAD, ADMIN)


def roles_ensure() -> dict[str, Group]:
    return {name: Group.objects.get_or_create(name=name)[0] for name in ROLES}


def user_roles(user: AbstractBaseUser | AnonymousUser) -> set[str]:
    if not user.is_authenticated:
        return set()
    names = set(user.groups.values_list("name", flat=True))  # type: ignore[union-attr]
    if getattr(user, "is_superuser", False):
        names.add(ADMIN)
    return names & set(ROLES)


def has_role(user: AbstractBaseUser | AnonymousUser, *roles: str) -> bool:
    return bool(user_roles(user) & set(roles))
