from typing import Any

from django.core.management.base import BaseCommand

from geo311.roles import roles_setup


class Command(BaseCommand):
    help = (
        "Create the staff role groups (call-taker, crew, department-staff, manager, gis-admin) "
        "with their admin permissions. Safe to run again."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        groups = roles_setup()
        self.stdout.write(f"Roles: {', '.join(g.name for g in groups)}")
