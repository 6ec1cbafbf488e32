from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from rest_framework.authtoken.models import Token

from geo311.models import Department, Team
from geo311.roles import ROLES, staff_user_create


class Command(BaseCommand):
    help = (
        "Create a staff account with one role (and its department and crew team); prints its "
        "password, and with --token an API token for apps."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--role", required=True, choices=ROLES)
        parser.add_argument("--department", default="", help="department slug")
        parser.add_argument("--team", default="", help="team slug within the department")
        parser.add_argument("--email", default="")
        parser.add_argument("--token", action="store_true", help="also make an API token")

    def handle(self, *args: Any, **options: Any) -> None:
        department = team = None
        if options["department"]:
            department = Department.objects.filter(slug=options["department"]).first()
            if department is None:
                slugs = ", ".join(Department.objects.values_list("slug", flat=True))
                raise CommandError(f"no department '{options['department']}' (one of {slugs})")
        if options["team"]:
            team = Team.objects.filter(department=department, slug=options["team"]).first()
            if team is None:
                raise CommandError(
                    f"no team '{options['team']}' in department '{options['department']}' "
                    "(give --department too)"
                )
        try:
            user, password = staff_user_create(
                username=options["username"],
                role=options["role"],
                email=options["email"],
                department=department,
                team=team,
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"{user.username} ({options['role']}): password '{password}'")
        if options["token"]:
            token, _ = Token.objects.get_or_create(user=user)
            self.stdout.write(f"API token: {token.key}")
