"""Fixtures for the analysis tests: real Chicago sanitation complaints imported through the
importer (every 8th row of the 2011-2014 file, routed and with their status events), staff with
and without the view_reports permission."""

import csv
import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client

from tests.conftest import DEMO, REPO, SHARED_DATA, _clear_city

REQUESTS_CSV = SHARED_DATA / "chicago" / "requests" / "sanitation_code_complaints_2011_2014.csv"
MAPPING = REPO / "importers" / "mappings" / "chicago_sanitation.yaml"
EVERY = 8


def sample_csv(path: Path, *, every: int = EVERY) -> Path:
    with REQUESTS_CSV.open(newline="") as fh, path.open("w", newline="") as out:
        reader = csv.reader(fh)
        writer = csv.writer(out)
        writer.writerow(next(reader))
        writer.writerows(itertools.islice(reader, 0, None, every))
    return path


@pytest.fixture(scope="package")
def chicago_requests(django_db_setup, django_db_blocker, tmp_path_factory) -> Iterator[int]:  # type: ignore[no-untyped-def]
    """The Chicago demo city (layers and config) with an eighth of its 2011-2014 sanitation
    complaints imported, committed once for the tests of maps and removed after them. Yields
    how many were imported."""
    from django.db import connection

    from geo311.config import city_config_load, read_config
    from importers.manifest import import_manifest
    from importers.requests import import_request_file, read_mapping
    from maps.models import AnalysisRun, Denominator, RefreshMark, RequestFact

    path = sample_csv(tmp_path_factory.mktemp("chicago") / "sanitation_eighth.csv")
    with django_db_blocker.unblock():
        # pytest-django sets up the test database only when a collected test is marked for
        # one: never write (or clear!) these rows anywhere else.
        if not connection.settings_dict["NAME"].startswith("test_"):
            raise pytest.UsageError(
                f"the maps tests commit rows and would write to {connection.settings_dict['NAME']}"
                "; run them with a test marked django_db"
            )
        import_manifest(DEMO / "layers.json")
        city_config_load(data=read_config(DEMO / "city.yaml"))
        report = import_request_file(path, mapping=read_mapping(MAPPING))
        yield report.imported
        AnalysisRun.objects.all().delete()
        Denominator.objects.all().delete()
        RequestFact.objects.all().delete()
        RefreshMark.objects.all().delete()
        _clear_city()


def _user(name: str, *, staff: bool, allowed: bool) -> User:
    user = User.objects.create_user(name, password=f"{name}-password-311", is_staff=staff)
    if allowed:
        user.user_permissions.add(Permission.objects.get(codename="view_reports"))
    return user


@pytest.fixture
def planner(db: None) -> User:
    return _user("planner", staff=True, allowed=True)


@pytest.fixture
def planner_client(planner: User) -> Client:
    client = Client()
    client.force_login(planner)
    return client
