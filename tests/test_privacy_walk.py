"""Every public endpoint, walked with a reporter's details seeded: no public answer holds the
reporter's name, email, phone, device or account, a follower's contact, an internal note, or a
sensitive request's exact place (its coordinates to 5 decimals, its street address).

The walk lists the URL patterns from the resolver and classifies each one as staff (it must
refuse an anonymous visitor) or public (called here). A public pattern the walk does not know
how to call fails the test: a new endpoint must be added to ``PUBLIC`` below.
"""

import asyncio
import datetime as dt
import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import mapbox_vector_tile
import pytest
from asgiref.sync import async_to_sync
from django.contrib.gis.geos import Point
from django.test import AsyncClient, Client
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone

from boundaries.models import Boundary
from geo311.models import ApiKey, Follower, ServiceCategory, ServiceRequest, StatusEvent
from geo311.notifications.live import event_hub
from geo311.privacy import public_point
from geo311.roles import MANAGER, staff_user_create
from geo311.services import Reporter, request_create
from tests.geo311.conftest import REPORTER

pytestmark = pytest.mark.django_db

# A house in Chicago's 1st police district (NOISE is routed there), far enough from its grid
# cell's centre that the two can be told apart at 5 decimals.
HOUSE = Point(-87.626512, 41.881236, srid=4326)
HOUSE_ADDRESS = "77 W Hidden Court Apt 3"
LOOP = Point(-87.6298, 41.8781, srid=4326)
FOLLOWER = {"email": "follower.secret@example.org", "phone": "+13125550177"}
INTERNAL_NOTE = "internal: neighbour at unit 3 keeps a drum kit"
ACTOR = "crew.member.zq7"

# Staff and sign-in patterns: refused to an anonymous visitor, or account pages showing no
# request data. Route prefixes, then URL names.
STAFF_PREFIXES = (
    "admin/",
    "accounts/",
    "api/v1/staff/",
    "api/v1/analysis/",
    "planner/",
    "staff/",  # the queue, the field view and the call-taker form
)
STAFF_NAMES: set[str] = set()
# Staff event streams: the ASGI server answers them (the WSGI app says 501 and where to go).
STAFF_STREAMS = {"staffweb:queue-events"}


@dataclass
class Seeded:
    plain: ServiceRequest
    sensitive: ServiceRequest
    follower: Follower
    api_key: str
    ward_id: int

    @property
    def secrets(self) -> list[str]:
        return [
            *REPORTER.values(),
            *FOLLOWER.values(),
            INTERNAL_NOTE,
            ACTOR,
            HOUSE_ADDRESS,
        ]

    @property
    def exact(self) -> list[str]:
        """The sensitive request's exact coordinates, to 5 decimals (rounded and cut)."""
        forms = set()
        for value in (HOUSE.x, HOUSE.y):
            forms.add(f"{value:.5f}")
            forms.add(f"{math.trunc(value * 1e5) / 1e5:.5f}")
        return sorted(forms)


@pytest.fixture
def seeded(chicago_city: None) -> Seeded:
    reporter = Reporter(**REPORTER)
    plain = request_create(
        category=ServiceCategory.objects.get(service_code="POTHOLE"),
        location=LOOP,
        address="1 N State St",
        description="deep pothole by the bus stop",
        answers={"WHERE": ["street"]},
        reporter=reporter,
    )
    sensitive = request_create(
        category=ServiceCategory.objects.get(service_code="NOISE"),
        location=HOUSE,
        address=HOUSE_ADDRESS,
        description="loud music every night",
        reporter=reporter,
    )
    for request in (plain, sensitive):
        StatusEvent.objects.create(
            request=request,
            status=request.status,
            kind="note",
            public=False,
            internal_note=INTERNAL_NOTE,
            actor=ACTOR,
            created_at=timezone.now(),
        )
        StatusEvent.objects.create(
            request=request,
            status=request.status,
            kind="note",
            note="A crew will visit this week",
            actor=ACTOR,
            created_at=timezone.now() + dt.timedelta(seconds=1),
        )
    follower = Follower.objects.create(request=plain, created_at=timezone.now(), **FOLLOWER)
    ward = Boundary.objects.filter(version__layer__slug="wards", version__status="active").first()
    assert ward is not None
    published = public_point(HOUSE, True)
    # The published point really is elsewhere, in both coordinates.
    assert f"{published.x:.5f}" != f"{HOUSE.x:.5f}"
    assert f"{published.y:.5f}" != f"{HOUSE.y:.5f}"
    return Seeded(plain, sensitive, follower, ApiKey.objects.create(name="walk").key, ward.pk)


# --- how to call each public pattern ---------------------------------------------------------


@dataclass
class Call:
    path: str
    params: dict[str, Any] | None = None
    method: str = "get"
    stream: bool = False


def _open311(*paths: str, **params: Any) -> list[Call]:
    return [
        Call(f"/open311/v2/{path}.{fmt}", params or None)
        for path in paths
        for fmt in ("json", "xml")
    ]


def _both(s: Seeded) -> list[str]:
    return [s.plain.public_id, s.sensitive.public_id]


def _near_house(s: Seeded) -> dict[str, Any]:
    # Close to the house, not on it (the answer repeats the point asked about).
    return {"lat": HOUSE.y + 0.0009, "lon": HOUSE.x - 0.0011}


def fill(match: re.Match[str], values: dict[str, Any]) -> str:
    return str(values.get(match.group(1), f"?{match.group(1)}"))


def _tiles(s: Seeded, route: str) -> list[Call]:
    """Tiles of every layer around the sensitive request, at a street and a city zoom. ``route``
    is a path (``<name>`` parameters) or a regex (``(?P<name>...)`` groups)."""
    calls = []
    for z in (16, 14, 12, 10):
        n = 2**z
        x = int((HOUSE.x + 180) / 360 * n)
        y = int((1 - math.asinh(math.tan(math.radians(HOUSE.y))) / math.pi) / 2 * n)
        for layer in ("requests", "wards"):
            values = {"layer": layer, "z": z, "x": x, "y": y}
            path = re.sub(r"\(\?P<(\w+)>[^)]*\)", lambda m, v=values: fill(m, v), route)
            path = re.sub(r"<(?:\w+:)?(\w+)>", lambda m, v=values: fill(m, v), path)
            path = path.replace("^", "").replace("$", "").replace("\\.", ".")
            if "?" in path or "\\" in path:
                pytest.fail(f"the walk does not know how to fill {route}: add it to PUBLIC")
            calls.append(Call("/" + path))
    return calls


PUBLIC: dict[str, Callable[[Seeded], list[Call]]] = {
    "health": lambda s: [Call("/health")],
    "schema": lambda s: [Call("/api/schema/")],
    "api-docs": lambda s: [Call("/api/docs/")],
    # Boundaries
    "boundaries:lookup": lambda s: [
        Call("/api/v1/boundaries/lookup", {"lat": LOOP.y, "lon": LOOP.x})
    ],
    "boundaries:layer-list": lambda s: [Call("/api/v1/boundaries/layers/")],
    "boundaries:layer-detail": lambda s: [Call("/api/v1/boundaries/layers/wards/")],
    "boundaries:layer-boundaries": lambda s: [
        Call("/api/v1/boundaries/layers/wards/boundaries.geojson", {"simplify": 20})
    ],
    "boundaries:boundary-detail": lambda s: [Call(f"/api/v1/boundaries/{s.ward_id}/")],
    # Residents' request API
    "requests:nearby": lambda s: [
        Call("/api/v1/requests/nearby", {**_near_house(s), "service_code": code})
        for code in ("NOISE", "POTHOLE")
    ],
    "requests:followers": lambda s: [Call(f"/api/v1/requests/{i}/followers") for i in _both(s)],
    "requests:follow": lambda s: [
        Call(
            f"/api/v1/requests/{i}/follow",
            {"email": "someone.else@example.net"},
            method="post",
        )
        for i in _both(s)
    ],
    "requests:unsubscribe": lambda s: [
        Call("/api/v1/requests/unsubscribe", {"token": s.follower.token}, method="post")
    ],
    # Streams are served by the ASGI server: read through it.
    "notifications:events": lambda s: [
        Call(f"/api/v1/requests/{i}/events", {"after": 0}, stream=True) for i in _both(s)
    ],
    "notifications:alerts": lambda s: [
        Call(
            "/api/v1/alerts",
            {"email": "alerts.someone@example.net", "lat": LOOP.y, "lon": LOOP.x, "radius_m": 500},
            method="post",
        )
    ],
    "notifications:tracking": lambda s: [Call(f"/requests/{i}/") for i in _both(s)],
    "notifications:unsubscribe": lambda s: [Call(f"/notifications/unsubscribe/{s.follower.token}")],
    "notifications:area-confirm": lambda s: [Call("/notifications/alerts/confirm/no-such-token")],
    "tracking-follow": lambda s: [
        Call(f"/requests/{i}/follow/", {"email": "someone.else@example.net"}, method="post")
        for i in _both(s)
    ],
    "tracking-unfollow": lambda s: [
        Call(f"/requests/{i}/unfollow/", method="post") for i in _both(s)
    ],
    # Resident pages
    "home": lambda s: [Call("/"), Call("/", {"lat": HOUSE.y, "lon": HOUSE.x})],
    "public-map": lambda s: [Call("/map/")],
    "address-search": lambda s: [
        Call("/api/v1/addresses/search", {"q": q}) for q in (HOUSE_ADDRESS[:10], "77 W")
    ],
    # Uploaded photos (none of the seeded requests has one)
    "media": lambda s: [Call("/media/photos/none.jpg")],
    # Open311
    "open311:discovery": lambda s: _open311("discovery"),
    "open311:services": lambda s: _open311("services"),
    "open311:service-definition": lambda s: _open311("services/NOISE", "services/POTHOLE"),
    "open311:requests": lambda s: [
        *_open311("requests"),
        *_open311("requests", extensions="true"),
        *_open311("requests", service_request_id=",".join(_both(s)), extensions="true"),
        *_open311("requests", lat=HOUSE.y, long=HOUSE.x, radius=400),
        *_open311(
            "requests",
            bbox=f"{HOUSE.x - 0.01},{HOUSE.y - 0.01},{HOUSE.x + 0.01},{HOUSE.y + 0.01}",
        ),
        Call(
            "/open311/v2/requests.json",
            {
                "api_key": s.api_key,
                "service_code": "NOISE",
                "lat": HOUSE.y,
                "long": HOUSE.x,
                "address_string": "",
                "description": "again",
                **REPORTER,
            },
            method="post",
        ),
    ],
    "open311:request-detail": lambda s: [
        call
        for i in _both(s)
        for call in (*_open311(f"requests/{i}"), *_open311(f"requests/{i}", extensions="true"))
    ],
    "open311:request-nearby": lambda s: [
        call for i in _both(s) for call in _open311(f"requests/{i}/nearby")
    ],
    "open311:token": lambda s: [
        call for r in (s.plain, s.sensitive) for call in _open311(f"tokens/{r.token}")
    ],
    "open311:request-updates": lambda s: _open311("servicerequestupdates"),
    "open311:coverage": lambda s: _open311("coverage", lat=LOOP.y, long=LOOP.x),
    "open311:unknown": lambda s: _open311("nothing-here"),
    # Map layers
    "layers:requests": lambda s: [
        Call("/api/v1/layers/requests.geojson"),
        Call("/api/v1/layers/requests.geojson", {"service_code": "NOISE"}),
        Call(
            "/api/v1/layers/requests.geojson",
            {"bbox": ",".join(str(v) for v in HOUSE.buffer(0.0002).extent)},
        ),
    ],
    "layers:boundaries": lambda s: [Call("/api/v1/layers/boundaries/police-districts.geojson")],
    # OGC API - Features
    "ogc:landing": lambda s: [Call("/ogc/")],
    "ogc:conformance": lambda s: [Call("/ogc/conformance")],
    "ogc:collections": lambda s: [Call("/ogc/collections")],
    "ogc:collection": lambda s: [Call("/ogc/collections/requests"), Call("/ogc/collections/wards")],
    "ogc:items": lambda s: [
        Call("/ogc/collections/requests/items", {"limit": 1000}),
        Call("/ogc/collections/wards/items", {"limit": 5}),
    ],
    "ogc:item": lambda s: [
        *[Call(f"/ogc/collections/requests/items/{i}") for i in _both(s)],
        Call(f"/ogc/collections/wards/items/{s.ward_id}"),
    ],
}


def url_patterns() -> Iterator[tuple[str, str]]:
    """(route, namespaced name) of every URL pattern the project serves."""

    def walk(patterns: list[Any], prefix: str, namespace: str) -> Iterator[tuple[str, str]]:
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                inner = f"{namespace}{pattern.namespace}:" if pattern.namespace else namespace
                yield from walk(pattern.url_patterns, prefix + str(pattern.pattern), inner)
            elif isinstance(pattern, URLPattern):
                yield prefix + str(pattern.pattern), namespace + (pattern.name or "")

    return walk(get_resolver().url_patterns, "", "")


def calls_for(seeded: Seeded) -> tuple[list[tuple[str, Call]], list[str], list[str]]:
    """The public calls, the staff routes, and the public routes nobody taught the walk."""
    calls: list[tuple[str, Call]] = []
    staff: list[str] = []
    unknown: list[str] = []
    for route, name in url_patterns():
        if route.startswith(STAFF_PREFIXES) or name in STAFF_NAMES:
            staff.append(route)
        elif name in PUBLIC:
            calls += [(route, call) for call in PUBLIC[name](seeded)]
        elif route.startswith("tiles/"):
            calls += [(route, call) for call in _tiles(seeded, route)]
        else:
            unknown.append(f"{route} (name {name!r})")
    return calls, staff, unknown


def _stream_head(path: str, params: dict[str, Any]) -> bytes:
    """The first seconds of an event stream (ASGI): what a browser gets on connecting."""

    async def read() -> bytes:
        response = await AsyncClient().get(path, params)
        assert response.status_code == 200
        chunks: list[bytes] = []
        iterator = response.streaming_content.__aiter__()
        try:
            while True:
                chunk = await asyncio.wait_for(iterator.__anext__(), timeout=2)
                chunks.append(chunk if isinstance(chunk, bytes) else chunk.encode())
        except (TimeoutError, StopAsyncIteration):
            pass
        finally:
            await iterator.aclose()
            # The loop ends with this call: close the process's LISTEN connection with it.
            hub = event_hub()
            if hub._task is not None:
                hub._task.cancel()
                await asyncio.gather(hub._task, return_exceptions=True)
        return b"".join(chunks)

    # async_to_sync: the view's database reads run on this thread, in the test's transaction.
    return async_to_sync(read)()


def _vertices(coordinates: Any) -> Iterator[tuple[float, float]]:
    if coordinates and isinstance(coordinates[0], int | float):
        yield float(coordinates[0]), float(coordinates[1])
    else:
        for part in coordinates:
            yield from _vertices(part)


def _tile_points(body: bytes, path: str) -> list[tuple[float, float]]:
    """Every vertex of a vector tile ``.../{z}/{x}/{y}.mvt``, in WGS84 degrees."""
    z, x, y = (int(v) for v in re.findall(r"/(\d+)/(\d+)/(\d+)\.mvt", path)[0])
    n = 2**z
    points = []
    for layer in mapbox_vector_tile.decode(body).values():
        extent = layer.get("extent", 4096)
        for feature in layer["features"]:
            for px, py in _vertices(feature["geometry"]["coordinates"]):
                lon = (x + px / extent) / n * 360 - 180
                # mapbox_vector_tile decodes with y up (0 at the bottom of the tile).
                merc_y = math.pi * (1 - 2 * (y + 1 - py / extent) / n)
                points.append((lon, math.degrees(math.atan(math.sinh(merc_y)))))
    return points


def test_the_walk_reads_tile_vertices_in_degrees() -> None:
    """The tile check decodes vertices to degrees: a tile with a point on the house gives it
    back, to a fraction of a metre."""
    z = 16
    n = 2**z
    x = int((HOUSE.x + 180) / 360 * n)
    y = int((1 - math.asinh(math.tan(math.radians(HOUSE.y))) / math.pi) / 2 * n)
    west, east = x / n * 360 - 180, (x + 1) / n * 360 - 180
    north = math.degrees(math.atan(math.sinh(math.pi * (1 - 2 * y / n))))
    south = math.degrees(math.atan(math.sinh(math.pi * (1 - 2 * (y + 1) / n))))
    tile = mapbox_vector_tile.encode(
        [{"name": "requests", "features": [{"geometry": HOUSE.wkt, "properties": {}}]}],
        default_options={"quantize_bounds": (west, south, east, north)},
    )
    ((lon, lat),) = _tile_points(tile, f"/tiles/requests/{z}/{x}/{y}.mvt")
    assert abs(lon - HOUSE.x) < 2e-6
    assert abs(lat - HOUSE.y) < 2e-6


def where_of(call: Call) -> str:
    return f"{call.method.upper()} {call.path}?{urlencode(call.params or {})}"


def test_no_public_answer_tells_a_secret(seeded: Seeded, client: Client, settings: Any) -> None:
    settings.GEO311_EVENTS_URL = ""
    calls, staff, unknown = calls_for(seeded)
    assert not unknown, (
        "public URL patterns the privacy walk does not know how to call; add them to PUBLIC in "
        f"tests/test_privacy_walk.py: {unknown}"
    )
    assert len(calls) > 60
    leaks: list[str] = []
    answered = 0
    for _route, call in calls:
        if call.stream:
            body = _stream_head(call.path, call.params or {})
            status, content_type = 200, "text/event-stream"
        else:
            send = getattr(client, call.method)
            response = send(call.path, call.params or {})
            status, content_type = response.status_code, response.get("Content-Type", "")
            body = (
                response.content if not response.streaming else b"".join(response.streaming_content)
            )
        assert status < 500, f"{call.path}: {status}"
        if status >= 400:
            print(where_of(call), status, body[:300])
        answered += status < 400
        text = body.decode("utf-8", "replace")
        where = where_of(call)
        for secret in seeded.secrets:
            if secret in text or secret.replace("@", "%40") in text:
                leaks.append(f"{where}: {secret!r}")
        for coordinate in seeded.exact:
            if coordinate in text:
                leaks.append(f"{where}: the sensitive request's coordinate {coordinate}")
        if content_type.startswith("application/vnd.mapbox-vector-tile") or call.path.endswith(
            ".mvt"
        ):
            for lon, lat in _tile_points(body, call.path):
                if abs(lon - HOUSE.x) < 2e-5 and abs(lat - HOUSE.y) < 2e-5:
                    leaks.append(f"{where}: a vertex at the sensitive request's exact place")
    assert not leaks, "\n".join(leaks)
    assert answered > 50

    # The sensitive request is published: at its cell's centre.
    published = public_point(HOUSE, True)
    layer = client.get("/api/v1/layers/requests.geojson", {"service_code": "NOISE"}).json()
    (feature,) = [f for f in layer["features"] if f["id"] == seeded.sensitive.public_id]
    assert feature["geometry"]["coordinates"] == [round(published.x, 6), round(published.y, 6)]
    open311 = client.get(f"/open311/v2/requests/{seeded.sensitive.public_id}.json").json()[0]
    assert (open311["long"], open311["lat"]) == pytest.approx((published.x, published.y))
    assert open311["address"] == ""

    # Staff see the exact point and the address (staff API, signed in).
    assert staff, "the walk found no staff routes"


def test_staff_routes_refuse_an_anonymous_visitor(seeded: Seeded, client: Client) -> None:
    checked = 0
    for route, name in url_patterns():
        if not route.startswith(STAFF_PREFIXES) and name not in STAFF_NAMES:
            continue
        if re.search(r"[<(]", route) or route.startswith("accounts/") or name == "admin:login":
            continue  # needs arguments, or is the sign-in itself
        if name in STAFF_STREAMS:  # served by the ASGI server, as the public streams
            response = async_to_sync(AsyncClient().get)("/" + route)
        else:
            response = client.get("/" + route)
        assert response.status_code in (302, 401, 403, 405), f"/{route}: {response.status_code}"
        checked += 1
    assert checked >= 10


def test_place_filters_cannot_find_the_exact_place(seeded: Seeded, client: Client) -> None:
    """A box or circle small enough to hold the exact point and not the cell centre finds no
    sensitive request (else its exact place could be narrowed down by searching); around the
    published point, it is found."""
    published = public_point(HOUSE, True)
    sensitive = seeded.sensitive.public_id

    def ids(path: str, **params: Any) -> list[str]:
        response = client.get(path, params)
        assert response.status_code == 200, response.content[:300]
        body = response.json()
        if isinstance(body, list):
            return [r["service_request_id"] for r in body]
        return [f["id"] for f in body["features"]]

    for point, found in ((HOUSE, False), (published, True)):
        box = ",".join(f"{v:.6f}" for v in point.buffer(0.0002).extent)
        assert (sensitive in ids("/open311/v2/requests.json", bbox=box)) is found
        assert (sensitive in ids("/api/v1/layers/requests.geojson", bbox=box)) is found
        assert (sensitive in ids("/ogc/collections/requests/items", bbox=box)) is found
        near = ids("/open311/v2/requests.json", lat=point.y, long=point.x, radius=15)
        assert (sensitive in near) is found


def test_staff_keep_the_exact_point_and_address(seeded: Seeded, client: Client) -> None:
    user, _password = staff_user_create(username="walk-manager", role=MANAGER)
    client.force_login(user)
    detail = client.get(f"/api/v1/staff/requests/{seeded.sensitive.public_id}")
    assert detail.status_code == 200
    text = detail.content.decode()
    assert HOUSE_ADDRESS in text
    assert str(HOUSE.x) in text
    assert str(HOUSE.y) in text


def test_nearby_reasons_do_not_confirm_a_sensitive_address(seeded: Seeded, client: Client) -> None:
    def reasons(code: str, address: str, public_id: str) -> list[str]:
        near = _near_house(seeded) if code == "NOISE" else {"lat": LOOP.y, "lon": LOOP.x}
        body = client.get(
            "/api/v1/requests/nearby",
            {**near, "service_code": code, "address": address, "limit": 20},
        ).json()
        (found,) = [c for c in body["candidates"] if c["public_id"] == public_id]
        return list(found["reasons"])

    assert not any(
        "address" in r for r in reasons("NOISE", HOUSE_ADDRESS, seeded.sensitive.public_id)
    )
    assert "same street address" in reasons("POTHOLE", "1 N State St", seeded.plain.public_id)
