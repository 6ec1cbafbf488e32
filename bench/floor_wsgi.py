"""The least a WSGI app can do: an empty 200 to every request, with no Django behind it.

Served by gunicorn as geo311 is (``tiles``), it measures what gunicorn, the TCP connection and
the client cost by themselves: a floor under any view's latency.
"""


def application(environ, start_response):  # type: ignore[no-untyped-def]
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "0")])
    return [b""]
