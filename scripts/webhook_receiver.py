#!/usr/bin/env python3
"""A webhook receiver for trying deliveries out: prints each delivery,
checks its Standard Webhooks signature and answers 204 (401 if the
signature is wrong).

    python3 scripts/webhook_receiver.py PORT SECRET
"""
import base64
import hashlib
import hmac
import json
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer


def verify(secret: str, headers, body: bytes) -> bool:
    key = base64.b64decode(secret[6:]) if secret.startswith("whsec_") else secret.encode()
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    expected = "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return any(hmac.compare_digest(expected, s) for s in headers["webhook-signature"].split())


class Receiver(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        ok = verify(SECRET, self.headers, body)
        event = json.loads(body)
        print(f"{self.headers['webhook-id']} {event['type']} {event['integrationId']} "
              f"signature {'ok' if ok else 'WRONG'}", flush=True)
        self.send_response(204 if ok else 401)
        self.end_headers()

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    SECRET = sys.argv[2]
    HTTPServer(("127.0.0.1", int(sys.argv[1])), Receiver).serve_forever()
