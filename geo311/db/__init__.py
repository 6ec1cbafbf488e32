"""geo311's database backend: Django's PostGIS backend with a health check that needs no
round trip (``geo311.db.base``)."""
