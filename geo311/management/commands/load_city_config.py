from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from geo311.config import CityConfigError, city_config_load, read_config


class Command(BaseCommand):
    help = (
        "Load a city's statuses, departments, teams, service categories with their questions, "
        "and routing rules from one YAML or JSON file (see geo311/demo/chicago/city.yaml). "
        "Safe to run again; the file's rules replace the current ones."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", type=Path)

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            report = city_config_load(data=read_config(options["file"]))
        except CityConfigError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"Loaded {report.summary()}.")
