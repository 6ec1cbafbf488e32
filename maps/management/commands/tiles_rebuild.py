"""Count every request into the tile cell counts again (after GEO311_SENSITIVE_GRID_M or
GEO311_TIME_ZONE changed; the triggers keep them current otherwise)."""

from typing import Any

from django.core.management.base import BaseCommand
from django.db import transaction

from maps.tiles import request_cells_rebuild, tiles_prune


class Command(BaseCommand):
    help = "Recount requests into the low-zoom tile cells and drop stale cached tiles."

    def handle(self, *args: Any, **options: Any) -> None:
        with transaction.atomic():
            made = request_cells_rebuild()
        removed = tiles_prune()
        self.stdout.write(f"{made} cell rows made; {removed} stale cached tiles removed")
