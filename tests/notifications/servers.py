"""The receiving ends of the end-to-end tests, each run as its own process:

- ``smtp``: a real SMTP server (aiosmtpd) that records every message it accepts, one JSON line
  per message (Message-ID, recipients, subject, body), after answering 250; ``--delay`` slows
  each message down, so a worker can be killed in the middle of a batch.
- ``http``: an HTTP server that plays Twilio's Messages API (basic auth checked, 201 with a
  message sid) and any webhook receiver (200), recording each request (path, headers, body).

    python -m tests.notifications.servers smtp --port 2525 --log smtp.jsonl [--delay 0.05]
    python -m tests.notifications.servers http --port 8099 --log http.jsonl
"""

import argparse
import asyncio
import base64
import json
import os
import signal
import threading
import uuid
from email import message_from_bytes, policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

TWILIO_SID = "AC00000000000000000000000000000000"
TWILIO_TOKEN = "test-auth-token"

_write = threading.Lock()


def _record(path: str, entry: dict[str, Any]) -> None:
    with _write, open(path, "a", encoding="utf-8") as log:
        log.write(json.dumps(entry) + "\n")
        log.flush()
        os.fsync(log.fileno())


def smtp(port: int, log: str, delay: float) -> None:
    from aiosmtpd.controller import Controller

    class Recorder:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            if delay:
                await asyncio.sleep(delay)
            message = message_from_bytes(envelope.content, policy=policy.default)
            body = message.get_body(preferencelist=("plain",))
            html = message.get_body(preferencelist=("html",))
            _record(
                log,
                {
                    "message_id": message["Message-ID"],
                    "to": list(envelope.rcpt_tos),
                    "subject": str(message["Subject"]),
                    "text": body.get_content() if body else "",
                    "html": html.get_content() if html else "",
                    "list_unsubscribe": message["List-Unsubscribe"],
                },
            )
            return "250 OK"

    controller = Controller(Recorder(), hostname="127.0.0.1", port=port)
    controller.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print("ready", flush=True)
    stop.wait()
    controller.stop()


def http(port: int, log: str) -> None:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            entry = {"path": self.path, "headers": dict(self.headers), "body": body.decode()}
            if self.path.startswith("/2010-04-01/Accounts/"):
                expected = base64.b64encode(f"{TWILIO_SID}:{TWILIO_TOKEN}".encode()).decode()
                if self.headers.get("Authorization") != f"Basic {expected}":
                    self._answer(401, {"code": 20003, "message": "Authenticate", "status": 401})
                    return
                sid = "SM" + uuid.uuid4().hex
                _record(log, {**entry, "sid": sid})
                self._answer(201, {"sid": sid, "status": "queued"})
                return
            _record(log, entry)
            self._answer(200, {"ok": True})

        def _answer(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    print("ready", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("kind", choices=["smtp", "http"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--log", required=True)
    parser.add_argument("--delay", type=float, default=0.0)
    args = parser.parse_args()
    if args.kind == "smtp":
        smtp(args.port, args.log, args.delay)
    else:
        http(args.port, args.log)
