import os
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from importers.boundaries import BoundaryImportError
from importers.manifest import import_manifest


class Command(BaseCommand):
    help = (
        "Import every boundary layer listed in a JSON manifest (see importers/manifest.py). "
        "Files already imported with the same checksum are skipped, so it can run again."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("manifest", type=Path)
        parser.add_argument("--root", type=Path, help="folder the manifest's file paths start from")
        parser.add_argument("--dry-run", action="store_true")
        parser.add_argument(
            "--jobs",
            type=int,
            default=os.cpu_count() or 1,
            help="layers imported at the same time (default: one per CPU core)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            reports = import_manifest(
                options["manifest"],
                root=options["root"],
                dry_run=options["dry_run"],
                jobs=options["jobs"],
                progress=lambda msg: self.stderr.write(f"… {msg}"),
            )
        except BoundaryImportError as exc:
            raise CommandError(str(exc)) from exc
        for report in reports:
            self.stdout.write(report.summary())
