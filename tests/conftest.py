from collections.abc import Callable
from pathlib import Path

import pytest

from importers.boundaries import ImportReport, import_boundary_file

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"
CHICAGO = SHARED_DATA / "chicago" / "boundaries"
NYC = SHARED_DATA / "nyc"
DEMO = REPO / "geo311" / "demo" / "chicago"

# Chicago's Loop (State & Madison area), used throughout.
LOOP = (41.8781, -87.6298)


def pytest_sessionstart(session: pytest.Session) -> None:
    if not SHARED_DATA.is_dir():
        raise pytest.UsageError(f"the tests read real city data from {SHARED_DATA}; it is missing")


@pytest.fixture
def import_file(db: None) -> Callable[..., ImportReport]:
    def _import(path: Path, **options: object) -> ImportReport:
        return import_boundary_file(path, **options)  # type: ignore[arg-type]

    return _import
