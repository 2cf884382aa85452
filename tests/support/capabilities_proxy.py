"""A loopback proxy in front of a real Synapse that answers `/capabilities` as an older homeserver would.

Synapse always offers room versions with restricted joins, so a homeserver without them (what an
operator of an old server has) is shown by this proxy: every request goes on to the real
Synapse unchanged, except `GET /_matrix/client/v3/capabilities`, answered with the document given.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding", "host"}


class CapabilitiesProxy:
    def __init__(self, upstream: str, capabilities: dict[str, Any]) -> None:
        self.upstream = upstream.rstrip("/")
        self.capabilities = capabilities
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _answer(self, status: int, headers: dict[str, str], body: bytes) -> None:
                self.send_response(status)
                for name, value in headers.items():
                    if name.lower() not in _HOP_BY_HOP:
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _forward(self) -> None:
                if self.command == "GET" and self.path.split("?")[0] == "/_matrix/client/v3/capabilities":
                    self._answer(200, {"Content-Type": "application/json"}, json.dumps(proxy.capabilities).encode())
                    return
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                headers = {name: value for name, value in self.headers.items() if name.lower() not in _HOP_BY_HOP}
                response = httpx.request(self.command, proxy.upstream + self.path, content=body, headers=headers, timeout=60)
                self._answer(response.status_code, dict(response.headers), response.content)

            do_GET = do_POST = do_PUT = do_DELETE = _forward

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> CapabilitiesProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
