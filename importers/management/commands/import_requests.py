from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from importers.requests import RequestImportError, import_request_file, read_mapping


class Command(BaseCommand):
    help = (
        "Import a legacy 311 CSV export as historical requests, routed in bulk. The mapping file "
        "(YAML or JSON, e.g. importers/mappings/chicago_sanitation.yaml) names the columns. "
        "Rows already imported from a file of the same name are skipped, so it can run again."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", type=Path)
        parser.add_argument("--mapping", type=Path, required=True, help="YAML or JSON mapping")
        parser.add_argument(
            "--rejects",
            type=Path,
            help="CSV for rejected rows (row, reason, original columns); default "
            "<file>.rejects.csv in the current folder (not written by --dry-run unless given)",
        )
        parser.add_argument("--source", help="source name stored on the requests (default: file)")
        parser.add_argument(
            "--dry-run", action="store_true", help="do everything, report, then roll back"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        path: Path = options["file"]
        rejects = options["rejects"]
        if rejects is None and not options["dry_run"]:
            rejects = Path.cwd() / f"{path.stem}.rejects.csv"
        try:
            report = import_request_file(
                path,
                mapping=read_mapping(options["mapping"]),
                source_name=options["source"],
                dry_run=options["dry_run"],
                rejects_path=rejects,
                progress=lambda msg: self.stderr.write(f"… {msg}"),
            )
        except RequestImportError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(report.summary())
