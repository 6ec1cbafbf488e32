"""Roles: the groups and their admin permissions, and staff accounts made by command."""

import pytest
from django.contrib.auth.models import Group, User
from django.core.management import CommandError, call_command
from django.test import Client
from rest_framework.authtoken.models import Token

from geo311.models import Department, StaffProfile, Team
from geo311.roles import (
    CREW,
    DEPARTMENT_STAFF,
    GIS_ADMIN,
    MANAGER,
    ROLES,
    roles_setup,
    staff_user_create,
)

pytestmark = pytest.mark.django_db


def test_roles_setup_makes_each_group_once_with_its_permissions(db):
    roles_setup()
    roles_setup()
    assert sorted(Group.objects.values_list("name", flat=True)) == sorted(ROLES)
    gis = Group.objects.get(name=GIS_ADMIN)
    assert gis.permissions.filter(codename="change_layer").exists()
    assert not Group.objects.get(name=CREW).permissions.exists()


def test_create_staff_prints_the_password_and_a_token(chicago_city, capsys):
    call_command(
        "create_staff",
        "dana",
        "--role",
        CREW,
        "--department",
        "streets-sanitation",
        "--team",
        "ward-crews",
        "--token",
    )
    out = capsys.readouterr().out
    user = User.objects.get(username="dana")
    password = out.split("password '")[1].split("'")[0]
    assert user.check_password(password)
    assert Token.objects.get(user=user).key in out
    profile = StaffProfile.objects.get(user=user)
    assert (profile.department.slug, profile.team.slug) == ("streets-sanitation", "ward-crews")
    assert list(user.groups.values_list("name", flat=True)) == [CREW]
    assert not user.is_staff  # crews use the staff API and pages, not the admin


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--role", CREW], "a crew account needs a department"),
        (["--role", CREW, "--department", "nope"], "no department 'nope'"),
        (
            ["--role", CREW, "--department", "parks", "--team", "ward-crews"],
            "no team 'ward-crews' in department 'parks'",
        ),
    ],
)
def test_create_staff_names_what_is_wrong(chicago_city, args, message):
    with pytest.raises(CommandError, match=message):
        call_command("create_staff", "erin", *args)
    assert not User.objects.filter(username="erin").exists()


def test_a_team_of_another_department_is_refused(chicago_city):
    with pytest.raises(ValueError, match="is not a team of"):
        staff_user_create(
            username="x",
            role=DEPARTMENT_STAFF,
            department=Department.objects.get(slug="parks"),
            team=Team.objects.get(slug="ward-crews"),
        )


def test_gis_admins_manage_boundaries_in_the_admin_but_have_no_queue(chicago_city):
    user, password = staff_user_create(username="gis", role=GIS_ADMIN)
    manager, _ = staff_user_create(username="boss", role=MANAGER)
    assert user.is_staff
    assert manager.is_staff
    client = Client()
    client.force_login(user)
    assert client.get("/admin/boundaries/layer/").status_code == 200
    assert client.get("/admin/geo311/servicerequest/").status_code == 403
    assert client.get("/api/v1/staff/requests").status_code == 403


def test_managers_open_the_planner_and_the_analyses_other_roles_do_not(chicago_city):
    streets = Department.objects.get(slug="streets-sanitation")
    manager, _ = staff_user_create(username="planner-boss", role=MANAGER, department=streets)
    crew, _ = staff_user_create(username="crew-7", role=CREW, department=streets)
    for user, page, api in ((manager, 200, 200), (crew, 403, 403)):
        client = Client()
        client.force_login(user)
        assert client.get("/planner/").status_code == page
        assert client.get("/api/v1/analysis/runs/").status_code == api
