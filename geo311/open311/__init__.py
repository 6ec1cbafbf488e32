"""Open311 GeoReport v2 (http://wiki.open311.org/GeoReport_v2) at /open311/v2/: discovery,
services, service definitions, requests (list, one, create) and tokens, plus the extensions
clients ask for: paging, updated_after/before, radius and bbox, ``extensions=true``, the
request updates feed and coverage."""
