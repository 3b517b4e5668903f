"""On its price-list page it tries to read, list and create host files, to
connect over TCP and send over UDP to the address the page names
(`"connect":"IP:PORT"`), to look up a name, and it reads its environment,
arguments and stdin; it writes a marker to stdout and stderr, and returns
one row saying what each attempt gave. The sandbox must show it nothing.
A page with `"raise":true` makes it raise an exception instead, whose
traceback must end the host's error message."""

import json
import os
import socket
import sys

from wit_world.exports import transformer
from wit_world.imports import types


def attempt(action):
    try:
        return f"ok: {action()}"
    except Exception as e:  # what the sandbox answered
        return f"error: {type(e).__name__}: {e}"


def reach_out(address):
    host, port = address.rsplit(":", 1)
    target = (host, int(port))

    def connect():
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.settimeout(2)
            s.connect(target)
            return "connected"

    def udp():
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            return f"{s.sendto(b'nosy', target)} bytes sent"

    def create():
        with open("/tmp/nosy-was-here", "w") as f:
            f.write("x")
        return "written"

    return {
        "read": attempt(lambda: f"{len(open('/etc/passwd').read())} bytes"),
        "list": attempt(lambda: f"{len(os.listdir('/'))} entries"),
        "create": attempt(create),
        "connect": attempt(connect),
        "udp": attempt(udp),
        "lookup": attempt(lambda: f"{len(socket.getaddrinfo(b'localhost', 80))} addresses"),
    }


class Transform(transformer.Transform):
    def __init__(self, context: types.RunContext) -> None:
        self.row = None

    def push(self, source: types.Source, page: bytes) -> None:
        if source != types.Source.PRICE_LIST:
            return
        print("nosy-stdout-marker")
        print("nosy-stderr-marker", file=sys.stderr)
        body = json.loads(page)
        if body.get("raise"):
            raise ValueError("nosy was asked to fail")
        address = body.get("connect", "127.0.0.1:9")
        seen = {
            "env": sorted(f"{k}={v}" for k, v in os.environ.items()),
            "args": sys.argv[1:],
            "stdin": attempt(lambda: sys.stdin.read() if sys.stdin else ""),
            **reach_out(address),
        }
        self.row = types.Row(id="seen", data=json.dumps(seen), stock=0)

    def finish(self) -> types.Summary:
        return types.Summary(price_list_items=1, stock_items=0, dropped_stock_items=0, rows=1)

    def next_batch(self, max_rows: int) -> list[types.Row]:
        row, self.row = self.row, None
        return [row] if row else []
