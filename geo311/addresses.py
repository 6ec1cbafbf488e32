"""Street addresses: one normal form to match on, and lookups of the city's address points.

``normalize_address`` is table-driven and position-aware (USPS Publication 28 abbreviations): a
suffix is only abbreviated at the end of the street name and a direction only before or after
it, so "1600 West North Avenue" becomes "1600 W NORTH AVE", not "1600 W N AVE". It costs a few
microseconds per address, which matters when a city's whole address layer is imported; a
statistical parser (usaddress, ~100 µs per address) was not worth that for a matching key.
"""

import math
import re
from dataclasses import dataclass

from django.contrib.gis.geos import Point
from django.contrib.postgres.search import TrigramSimilarity

from .models import AddressPoint

# Canonical form → spellings seen in the wild (the canonical form matches itself).
_SUFFIXES: dict[str, tuple[str, ...]] = {
    "ALY": ("ALLEY", "ALLY"),
    "AVE": ("AVENUE", "AV", "AVEN", "AVENU", "AVN", "AVNUE"),
    "BLVD": ("BOULEVARD", "BOUL", "BOULV", "BLV"),
    "CIR": ("CIRCLE", "CIRC", "CRCL"),
    "CT": ("COURT", "CRT"),
    "DR": ("DRIVE", "DRV", "DRIV"),
    "EXPY": ("EXPRESSWAY", "EXPRESS", "EXPW", "EXPWY", "EXP"),
    "HWY": ("HIGHWAY", "HIWAY", "HIWY", "HWAY"),
    "LN": ("LANE",),
    "PKWY": ("PARKWAY", "PARKWY", "PKWAY", "PKY"),
    "PL": ("PLACE",),
    "PLZ": ("PLAZA", "PLZA"),
    "RD": ("ROAD",),
    "SQ": ("SQUARE", "SQR", "SQU"),
    "ST": ("STREET", "STR", "STRT"),
    "TER": ("TERRACE", "TERR"),
    "TRL": ("TRAIL", "TRAILS", "TRLS"),
    "WAY": ("WY",),
}
_DIRECTIONS: dict[str, tuple[str, ...]] = {
    "N": ("NORTH",),
    "S": ("SOUTH",),
    "E": ("EAST",),
    "W": ("WEST",),
    "NE": ("NORTHEAST",),
    "NW": ("NORTHWEST",),
    "SE": ("SOUTHEAST",),
    "SW": ("SOUTHWEST",),
}
# Designators that take an identifier ("APT 3") and those that stand alone ("REAR").
_UNITS: dict[str, tuple[str, ...]] = {
    "APT": ("APARTMENT", "APPT"),
    "BLDG": ("BUILDING",),
    "DEPT": ("DEPARTMENT",),
    "FL": ("FLOOR", "FLR"),
    "RM": ("ROOM",),
    "STE": ("SUITE",),
    "UNIT": ("#",),
}
_LONE_UNITS: dict[str, tuple[str, ...]] = {
    "BSMT": ("BASEMENT",),
    "FRNT": ("FRONT",),
    "REAR": (),
    "LOWR": ("LOWER",),
    "UPPR": ("UPPER",),
}


def _table(groups: dict[str, tuple[str, ...]]) -> dict[str, str]:
    return {
        spelling: canon for canon, spellings in groups.items() for spelling in (canon, *spellings)
    }


SUFFIX = _table(_SUFFIXES)
DIRECTION = _table(_DIRECTIONS)
UNIT = _table(_UNITS)
LONE_UNIT = _table(_LONE_UNITS)

# "1/2" and "107-22" keep their mark between digits; apostrophes go without a gap (O'BRIEN);
# any other punctuation separates words. "#" is kept as a word of its own (a unit designator).
_DIGIT_MARK = re.compile(r"(?<=\d)([/-])(?=\d)")
_APOSTROPHE = re.compile(r"['\u2019`]")
_PUNCTUATION = re.compile(r"[^A-Z0-9#\x00\x01]+")
_HASH = re.compile(r"#")
_ZIP = re.compile(r"\b(\d{5})(?:-\d{4})?\s*$")


@dataclass(frozen=True)
class AddressParts:
    number: str
    pre_direction: str
    name: str
    suffix: str
    post_direction: str
    unit: str

    @property
    def street_line(self) -> str:
        """The address without its unit: what a building-level address point is keyed by."""
        words = [self.number, self.pre_direction, self.name, self.suffix, self.post_direction]
        return " ".join(w for w in words if w)

    def __str__(self) -> str:
        return " ".join(w for w in (self.street_line, self.unit) if w)


def _words(text: str) -> list[str]:
    text = _APOSTROPHE.sub("", str(text).upper())
    text = _DIGIT_MARK.sub(lambda m: "\x00" if m.group(1) == "/" else "\x01", text)
    text = _HASH.sub(" # ", text)
    text = _PUNCTUATION.sub(" ", text)
    return text.replace("\x00", "/").replace("\x01", "-").split()


def address_parts(text: str) -> AddressParts:
    """Split a street line into number, directions, name, suffix and unit, each in its normal
    form. Only the street line is read: city, state and ZIP belong in their own fields."""
    words = _words(text)
    unit_words: list[str] = []
    # A unit starts at a designator after at least a number and a name ("100 MAIN ST APT 3").
    # "FRONT" alone at the end after a suffix is a unit ("100 MAIN ST FRONT"), not in "W FRONT ST".
    for i in range(2, len(words)):
        word = words[i]
        takes_id = word in UNIT and i + 1 < len(words) and words[i + 1] not in SUFFIX
        alone = word in LONE_UNIT and i == len(words) - 1 and words[i - 1] in SUFFIX
        if takes_id or alone:
            unit_words = words[i:]
            words = words[:i]
            break
    unit = ""
    if unit_words:
        head = UNIT.get(unit_words[0]) or LONE_UNIT[unit_words[0]]
        rest = [w for w in unit_words[1:] if w != "#"]
        if head == "UNIT" and rest and rest[0] in UNIT:  # "# APT 3" → "APT 3"
            head, rest = UNIT[rest[0]], rest[1:]
        unit = " ".join([head, *rest])

    number = ""
    if words and any(c.isdigit() for c in words[0]):
        number, words = words[0], words[1:]

    post_direction = suffix = pre_direction = ""
    # A trailing direction after a suffix is a post-direction ("LAKE SHORE DR E"); a direction
    # on its own at the end is the name ("W NORTH"), not a direction.
    if len(words) >= 3 and words[-1] in DIRECTION and words[-2] in SUFFIX:
        post_direction, words = DIRECTION[words[-1]], words[:-1]
    # A suffix needs a name before it: "100 PARKWAY" is a street called Parkway.
    if len(words) >= 2 and words[-1] in SUFFIX:
        suffix, words = SUFFIX[words[-1]], words[:-1]
    # A leading direction needs a name after it: "100 NORTH AVE" is North Avenue.
    if len(words) >= 2 and words[0] in DIRECTION:
        pre_direction, words = DIRECTION[words[0]], words[1:]
    return AddressParts(
        number=number,
        pre_direction=pre_direction,
        name=" ".join(words),
        suffix=suffix,
        post_direction=post_direction,
        unit=unit,
    )


def normalize_address(text: str) -> str:
    """The matching key of a street line: upper case, punctuation out, single spaces, USPS
    abbreviations for suffixes, directions and unit designators ("1600 West North Avenue,
    Apt. 3" → "1600 W NORTH AVE APT 3")."""
    return str(address_parts(text))


class AddressNotFound(Exception):
    """No address point answers to the address; the message names it."""


# Points of one address closer than this are the same place (entrances, geocoder jitter).
SAME_PLACE_M = 100.0


def address_resolve(*, address_string: str, zipcode: str = "") -> AddressPoint:
    """The address point (EPSG:4326) of a free-text street address.

    Matches the normalised street line exactly, first with its unit and then without it
    (address points are usually per building). A ZIP code, given or at the end of the string,
    narrows the match. When several points match, the place most of them agree on (within
    ``SAME_PLACE_M`` metres) wins; if no place has a majority, AddressNotFound asks for a ZIP.
    """
    text = str(address_string or "").strip()
    zip_match = _ZIP.search(text)
    if not zipcode and zip_match and "," in text:
        zipcode = zip_match.group(1)
    # "1600 W North Ave, Chicago, IL 60622": the street line is before the first comma.
    street = text.split(",")[0]
    parts = address_parts(street)
    if not parts.name:
        raise AddressNotFound(f"'{address_string}' is not a street address")
    keys = [str(parts)]
    if parts.unit:
        keys.append(parts.street_line)
    for key in keys:
        candidates = list(AddressPoint.objects.filter(normalized=key).order_by("pk"))
        if zipcode:
            in_zip = [c for c in candidates if c.zipcode == zipcode or not c.zipcode]
            candidates = in_zip or candidates
        if candidates:
            return _best_supported(candidates, address_string)
    raise AddressNotFound(f"no address point for '{address_string}' (looked for '{keys[0]}')")


def _best_supported(candidates: list[AddressPoint], address_string: str) -> AddressPoint:
    if len(candidates) == 1:
        return candidates[0]
    support = [
        sum(_metres(c.location, other.location) <= SAME_PLACE_M for other in candidates)
        for c in candidates
    ]
    best = max(support)
    winners = [c for c, s in zip(candidates, support, strict=True) if s == best]
    if best * 2 > len(candidates) or len(winners) == 1:
        return winners[0]
    zips = sorted({c.zipcode for c in candidates if c.zipcode})
    hint = f" (ZIP codes {', '.join(zips)})" if zips else ""
    raise AddressNotFound(
        f"'{address_string}' matches {len(candidates)} address points in different places"
        f"{hint}; give the ZIP code"
    )


def _metres(a: Point, b: Point) -> float:
    """Great-circle distance in metres between two WGS84 points (a few candidates at a time)."""
    lon1, lat1 = math.radians(a.x), math.radians(a.y)
    lon2, lat2 = math.radians(b.x), math.radians(b.y)
    h = (
        math.sin((lat2 - lat1) / 2) ** 2
        + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    )
    return 2 * 6_371_008.8 * math.asin(math.sqrt(h))


def address_get(*, address_id: str) -> AddressPoint:
    """The address point with the city's id ``address_id``; AddressNotFound naming it if none."""
    point = AddressPoint.objects.filter(address_id=address_id).order_by("pk").first()
    if point is None:
        raise AddressNotFound(f"no address point with id '{address_id}'")
    return point


def address_search(*, text: str, limit: int = 8) -> list[AddressPoint]:
    """Address points a resident may mean while typing ``text``, best first: those whose
    normalised street line starts with the normalised text (a partial last word too: "1600 W
    NOR"); when none does, the most similar by trigrams with the same house number (typos:
    "1600 W NROTH AVE"; without the number, "N LA SALLE ST" is like thousands of points).

    Both are answered by the GIN trigram index on ``normalized`` (migration web 0001).
    """
    key = normalize_address(text) if str(text or "").strip() else ""
    if len(key) < 3:
        return []
    found = list(
        AddressPoint.objects.filter(normalized__startswith=key).order_by("normalized")[:limit]
    )
    if found:
        return found
    similar = AddressPoint.objects.filter(normalized__trigram_similar=key)
    number = address_parts(text).number
    if number:
        similar = similar.filter(normalized__startswith=number + " ")
    return list(
        similar.annotate(similarity=TrigramSimilarity("normalized", key)).order_by(
            "-similarity", "normalized"
        )[:limit]
    )
