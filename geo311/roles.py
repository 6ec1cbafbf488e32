"""Staff roles and what each may do, object by object.

A role is a Django group; where a staff user works is their ``StaffProfile`` (department, crew
team). The object-level rules are ``rules`` predicates registered as Django permissions, so
views ask ``user.has_perm("geo311.merge_request", request)`` and superusers pass everything.

| role | sees (private fields) | may |
|---|---|---|
| resident | nothing private | file, follow (public endpoints) |
| call-taker | the requests they filed | file for callers |
| crew | requests assigned to them or their team | transition, notes |
| department staff | their department's requests | transition, notes, assign, merge, move, file |
| manager | every department | all of the above, reports |
| GIS admin | — | boundaries (admin) |
| superuser | everything | everything |

``visible_requests`` is the queryset form of ``view_request_private``: the queue lists exactly
the requests whose details the user may read (tests hold the two together).
"""

import secrets
from typing import Any

import rules
from django.contrib.auth.models import Group, Permission, User
from django.db import transaction
from django.db.models import Q

from .models import Department, StaffProfile, Team

CALL_TAKER = "call-taker"
CREW = "crew"
DEPARTMENT_STAFF = "department-staff"
MANAGER = "manager"
GIS_ADMIN = "gis-admin"
ROLES = (CALL_TAKER, CREW, DEPARTMENT_STAFF, MANAGER, GIS_ADMIN)

# Django model permissions each group gets, for the admin (the staff API asks the rules below).
MODEL_PERMISSIONS: dict[str, list[str]] = {
    CALL_TAKER: [],
    CREW: [],
    DEPARTMENT_STAFF: ["geo311.view_servicerequest"],
    MANAGER: [
        "geo311.view_servicerequest",
        "geo311.view_statusevent",
        "geo311.view_follower",
        "geo311.view_department",
        "geo311.view_team",
        "geo311.view_servicecategory",
        "geo311.view_servicelevel",
        "geo311.view_routingrule",
        "geo311.view_status",
        "geo311.view_statustransition",
        # The planner page and the analysis API (maps/).
        "maps.view_reports",
    ],
    GIS_ADMIN: [
        f"boundaries.{action}_{model}"
        for model in ("layer", "layerversion", "boundary", "boundarypart")
        for action in ("add", "change", "delete", "view")
    ],
}
# Roles that work in the admin too (is_staff): the others use the staff API and pages.
ADMIN_ROLES = (MANAGER, GIS_ADMIN)

_NO_PROFILE = object()


def staff_profile(user: Any) -> StaffProfile | None:
    """The user's staff profile, read once per user object."""
    cached = getattr(user, "_geo311_profile", _NO_PROFILE)
    if cached is _NO_PROFILE:
        cached = (
            StaffProfile.objects.filter(user_id=user.pk).order_by().first() if user.pk else None
        )
        user._geo311_profile = cached
    return cached  # type: ignore[return-value]


@rules.predicate
def works_in_its_department(user: Any, request: Any) -> bool:
    profile = staff_profile(user)
    return bool(
        request is not None
        and profile is not None
        and profile.department_id
        and profile.department_id == request.department_id
    )


@rules.predicate
def is_its_crew(user: Any, request: Any) -> bool:
    if request is None:
        return False
    if request.assignee_id is not None and request.assignee_id == user.pk:
        return True
    profile = staff_profile(user)
    return bool(profile is not None and profile.team_id and profile.team_id == request.team_id)


@rules.predicate
def filed_it(user: Any, request: Any) -> bool:
    return (
        request is not None and request.filed_by_id is not None and request.filed_by_id == user.pk
    )


is_manager = rules.is_superuser | rules.is_group_member(MANAGER)
is_department_staff = rules.is_group_member(DEPARTMENT_STAFF)
is_crew = rules.is_group_member(CREW)
is_call_taker = rules.is_group_member(CALL_TAKER)
is_staff_member = is_manager | is_department_staff | is_crew | is_call_taker

runs_it = is_manager | (is_department_staff & works_in_its_department)
works_on_it = runs_it | (is_crew & is_its_crew)

rules.add_perm("geo311.use_staff_api", is_staff_member)
rules.add_perm("geo311.file_for_caller", is_manager | is_department_staff | is_call_taker)
rules.add_perm("geo311.view_request_private", works_on_it | (is_call_taker & filed_it))
rules.add_perm("geo311.change_request_status", works_on_it)
rules.add_perm("geo311.add_request_note", works_on_it)
rules.add_perm("geo311.assign_request", runs_it)
rules.add_perm("geo311.merge_request", runs_it)
rules.add_perm("geo311.move_request", runs_it)
rules.add_perm("maps.view_reports", is_manager)


def visible_requests(user: Any) -> Q:
    """The requests whose private details ``user`` may read, as a filter (the queue's scope);
    the same rules as ``geo311.view_request_private``."""
    if is_manager(user):
        return Q()
    profile = staff_profile(user)
    scope = Q(pk__in=[])
    if is_department_staff(user) and profile is not None and profile.department_id:
        scope |= Q(department_id=profile.department_id)
    if is_crew(user):
        scope |= Q(assignee_id=user.pk)
        if profile is not None and profile.team_id:
            scope |= Q(team_id=profile.team_id)
    if is_call_taker(user):
        scope |= Q(filed_by_id=user.pk)
    return scope


@transaction.atomic
def roles_setup() -> list[Group]:
    """Create the role groups with their model permissions (again: adds what is missing and
    drops what a role no longer has)."""
    groups = []
    for role in ROLES:
        group, _ = Group.objects.get_or_create(name=role)
        wanted = []
        for name in MODEL_PERMISSIONS[role]:
            app_label, codename = name.split(".")
            wanted.append(
                Permission.objects.get(content_type__app_label=app_label, codename=codename)
            )
        group.permissions.set(wanted)
        groups.append(group)
    return groups


@transaction.atomic
def staff_user_create(
    *,
    username: str,
    role: str,
    email: str = "",
    department: Department | None = None,
    team: Team | None = None,
    password: str | None = None,
) -> tuple[User, str]:
    """A staff account with one role and its profile; returns it and its password (``password``
    or a new random one). Department staff and crew need a department; a team must be one of
    it."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}, not '{role}'")
    if role in (DEPARTMENT_STAFF, CREW) and department is None:
        raise ValueError(f"a {role} account needs a department")
    if team is not None and (department is None or team.department_id != department.pk):
        raise ValueError(f"team '{team.slug}' is not a team of {department}")
    if User.objects.filter(username=username).exists():
        raise ValueError(f"user '{username}' exists already")
    roles_setup()
    password = password or secrets.token_urlsafe(12)
    user = User.objects.create_user(
        username=username, email=email, password=password, is_staff=role in ADMIN_ROLES
    )
    user.groups.add(Group.objects.get(name=role))
    StaffProfile.objects.create(user=user, department=department, team=team)
    return user, password
