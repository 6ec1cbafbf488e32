from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from boundaries import services
from boundaries.models import LayerVersion


class Command(BaseCommand):
    help = "Make a staged version of a layer the active one (the previous one is retired)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("layer", help="layer slug")
        parser.add_argument("version", type=int, help="version number")

    def handle(self, *args: Any, **options: Any) -> None:
        version = (
            LayerVersion.objects.select_related("layer")
            .filter(layer__slug=options["layer"], number=options["version"])
            .first()
        )
        if version is None:
            raise CommandError(
                f"layer '{options['layer']}' has no version {options['version']}; "
                "see the admin or `import_boundaries --dry-run`"
            )
        version = services.layer_version_activate(version=version)
        self.stdout.write(
            f"{version.layer.slug} v{version.number} is active from {version.effective_from}."
        )
