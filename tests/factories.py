"""Factories for boundary models (boundaries made here get their lookup parts through the
service, as imports do) and staff accounts."""

import factory
from django.contrib.auth.models import User
from django.contrib.gis.geos import MultiPolygon, Polygon

from boundaries import services
from boundaries.models import Boundary, Layer, LayerVersion, VersionStatus


def box(west: float, south: float, east: float, north: float) -> MultiPolygon:
    """A rectangle in degrees (EPSG:4326) with exactly these edges."""
    return MultiPolygon(Polygon.from_bbox((west, south, east, north)), srid=4326)


def square(west: float, south: float, size: float) -> MultiPolygon:
    """An axis-aligned square in degrees (EPSG:4326)."""
    return MultiPolygon(Polygon.from_bbox((west, south, west + size, south + size)), srid=4326)


class LayerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Layer

    slug = factory.Sequence(lambda n: f"layer-{n}")
    name = factory.LazyAttribute(lambda o: o.slug.title())


class LayerVersionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = LayerVersion

    layer = factory.SubFactory(LayerFactory)
    number = factory.Sequence(lambda n: n + 1)
    status = VersionStatus.ACTIVE
    source_name = "factory.geojson"
    checksum = factory.Sequence(lambda n: f"{n:064x}")
    source_crs = "EPSG:4326"
    code_field = "code"


class BoundaryFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Boundary
        skip_postgeneration_save = True

    version = factory.SubFactory(LayerVersionFactory)
    code = factory.Sequence(lambda n: str(n))
    name = factory.LazyAttribute(lambda o: f"Area {o.code}")
    geom = factory.LazyFunction(lambda: square(-87.7, 41.8, 0.1))

    @classmethod
    def _create(cls, model_class: type[Boundary], *args: object, **kwargs: object) -> Boundary:
        return services.boundary_save(boundary=model_class(*args, **kwargs))


def staff_user(
    username: str, role: str, department: str = "", team: str = "", **extra: object
) -> User:
    """A staff account made as ``manage.py create_staff`` makes it: the role's group and a
    profile in ``department`` (slug) and ``team`` (slug)."""
    from geo311.models import Department, Team
    from geo311.roles import staff_user_create

    dept = Department.objects.get(slug=department) if department else None
    crew = Team.objects.get(department=dept, slug=team) if team else None
    user, _ = staff_user_create(
        username=username, role=role, department=dept, team=crew, password="pw-" + username
    )
    for name, value in extra.items():
        setattr(user, name, value)
    if extra:
        user.save()
    return user
