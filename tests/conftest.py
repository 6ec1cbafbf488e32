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


def _clear_city() -> None:
    from boundaries.models import Layer
    from geo311.models import (
        AddressPoint,
        ApiKey,
        Department,
        RoutingRule,
        ServiceCategory,
        ServiceRequest,
        Status,
    )

    ServiceRequest.objects.all().delete()
    RoutingRule.objects.all().delete()
    ServiceCategory.objects.all().delete()
    Department.objects.all().delete()
    Status.objects.all().delete()
    AddressPoint.objects.all().delete()
    ApiKey.objects.all().delete()
    Layer.objects.all().delete()


@pytest.fixture(scope="module")
def chicago_city(django_db_setup, django_db_blocker):  # type: ignore[no-untyped-def]
    """The Chicago demo city (layers and city config), loaded once per test module and removed
    after it, so modules that expect an empty database are not affected."""
    from geo311.config import city_config_load, read_config
    from importers.manifest import import_manifest

    with django_db_blocker.unblock():
        import_manifest(DEMO / "layers.json")
        city_config_load(data=read_config(DEMO / "city.yaml"))
        yield
        _clear_city()


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):  # type: ignore[no-untyped-def]
    """Staff accounts are made in many tests; the production hasher takes a good part of a
    second per password on a shared machine."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
