"""S3 for tests: moto's S3 server on a local port, reached through a proxy that can inject faults.

boto3 talks HTTP to the proxy (`AWS_ENDPOINT_URL`), which forwards every request to moto
unchanged, unless a test asked it to answer some requests itself with an S3 error document:
a burst of 500s on uploads, or AccessDenied for one key. Nothing in boto3 is patched.
"""

from __future__ import annotations

import http.client
import socket
import sys
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests
from moto.server import ThreadedMotoServer


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class QuietServer(ThreadingHTTPServer):
    """A client that hangs up mid-request (boto3 retrying) is normal here, not an error to print."""

    def handle_error(self, request: object, client_address: object) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


@dataclass
class Fault:
    method: str
    path_contains: str
    status: int
    code: str
    times: int


class S3Server:
    def __init__(self) -> None:
        self.moto_port = free_port()
        self.moto = ThreadedMotoServer(ip_address="127.0.0.1", port=self.moto_port, verbose=False)
        self.faults: list[Fault] = []
        self.requests: list[tuple[str, str]] = []
        server = self

        class Proxy(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _handle(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                server.requests.append((self.command, self.path))
                fault = server.take_fault(self.command, self.path)
                if fault:
                    payload = (
                        f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{fault.code}</Code>'
                        f"<Message>injected by the test</Message></Error>"
                    ).encode()
                    self.send_response(fault.status)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                upstream = http.client.HTTPConnection("127.0.0.1", server.moto_port, timeout=60)
                upstream.request(self.command, self.path, body=body, headers=dict(self.headers))
                response = upstream.getresponse()
                data = response.read()
                self.send_response(response.status)
                for name, value in response.getheaders():
                    if name.lower() not in ("content-length", "transfer-encoding", "connection"):
                        self.send_header(name, value)
                # A HEAD answer has no body but tells the object's length.
                length = response.getheader("Content-Length", "0") if self.command == "HEAD" else str(len(data))
                self.send_header("Content-Length", length)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                upstream.close()

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

        self.proxy = QuietServer(("127.0.0.1", 0), Proxy)
        self.url = f"http://127.0.0.1:{self.proxy.server_address[1]}"

    def start(self) -> S3Server:
        self.moto.start()
        threading.Thread(target=self.proxy.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.proxy.shutdown()
        self.moto.stop()

    def reset(self) -> None:
        requests.post(f"http://127.0.0.1:{self.moto_port}/moto-api/reset", timeout=10)
        self.faults.clear()
        self.requests.clear()

    def fail(self, method: str, path_contains: str, status: int, code: str, times: int = 1) -> None:
        self.faults.append(Fault(method, path_contains, status, code, times))

    def take_fault(self, method: str, path: str) -> Fault | None:
        for fault in self.faults:
            if fault.method == method and fault.path_contains in path and fault.times > 0:
                fault.times -= 1
                return fault
        return None
