"""An HTTP proxy on loopback that injects faults into an S3 API (moto).

    python3 faultproxy.py PORT UPSTREAM      e.g. 8001 http://127.0.0.1:8000

stmon's tests put it between stmon and moto to play a flaky object store.
Requests are forwarded one by one, headers and body as they came (the
signature stays valid: moto does not check it, and the Host header is kept).

Faults are set and read on the proxy itself, never forwarded:
  POST /__faults__  {"seed": 7, "rules": [RULE, ...]}   replaces the rules,
                                                        zeroes the counts
  GET  /__faults__  {"requests": N, "injected": {KIND: N, ...},
                     "applied_then_failed": N}

A RULE: {"kind": KIND, "p": 0.2, "method": "PUT", "path": "regex",
         "times": 5, "delay": 2.0}
  kind       before503   answer 503 SlowDown, the request never reaches S3
             before500   answer 500 InternalError, never reaches S3
             reset       close the connection with a TCP reset, never reaches S3
             after500    forward (S3 applies it), then answer 500
             after_reset forward (S3 applies it), then reset the connection
             slow        wait `delay` seconds, then forward
  p          probability per matching request (default 1)
  method     only this HTTP method (default any)
  path       only paths (with query) matching this regex (default any)
  times      at most this many injections (default unlimited)
  once_per_path  at most once for each path (its retries then go through)
The first rule that matches and fires decides; a request no rule fires on
is forwarded untouched.
"""

import http.client
import http.server
import json
import random
import re
import socket
import struct
import sys
import threading
import time

HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te", "trailer"}

state_lock = threading.Lock()
state = {"rules": [], "rng": random.Random(0), "requests": 0, "injected": {}, "applied_then_failed": 0}


def choose(method, path):
    """The rule that fires for this request, or None (counts it)."""
    with state_lock:
        state["requests"] += 1
        for rule in state["rules"]:
            if rule.get("method") and rule["method"] != method:
                continue
            if rule.get("path") and not re.search(rule["path"], path):
                continue
            if rule.get("times") is not None and rule.get("_fired", 0) >= rule["times"]:
                continue
            if rule.get("once_per_path") and path in rule.setdefault("_paths", set()):
                continue
            if state["rng"].random() >= rule.get("p", 1.0):
                continue
            if rule.get("once_per_path"):
                rule["_paths"].add(path)
            rule["_fired"] = rule.get("_fired", 0) + 1
            state["injected"][rule["kind"]] = state["injected"].get(rule["kind"], 0) + 1
            if rule["kind"] in ("after500", "after_reset"):
                state["applied_then_failed"] += 1
            return rule
    return None


class Proxy(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    upstream = None

    def log_message(self, *args):
        pass

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def reset(self):
        self.close_connection = True
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()

    def answer(self, status, body, headers=()):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def s3_error(self, status, code):
        body = f"<?xml version=\"1.0\"?><Error><Code>{code}</Code><Message>injected by faultproxy</Message></Error>".encode()
        self.answer(status, body, [("Content-Type", "application/xml")])

    def control(self):
        if self.command == "POST":
            spec = json.loads(self.body() or b"{}")
            with state_lock:
                state["rules"] = spec.get("rules", [])
                state["rng"] = random.Random(spec.get("seed", 0))
                state["requests"] = 0
                state["injected"] = {}
                state["applied_then_failed"] = 0
        with state_lock:
            out = {k: state[k] for k in ("requests", "injected", "applied_then_failed")}
        self.answer(200, json.dumps(out).encode(), [("Content-Type", "application/json")])

    def forward(self, payload):
        conn = http.client.HTTPConnection(self.upstream, timeout=120)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP}
        conn.request(self.command, self.path, body=payload if payload or self.command in ("PUT", "POST") else None, headers=headers)
        r = conn.getresponse()
        data = r.read()
        conn.close()
        return r.status, [(k, v) for k, v in r.getheaders() if k.lower() not in HOP and k.lower() != "content-length"], data

    def handle_any(self):
        if self.path.startswith("/__faults__"):
            return self.control()
        payload = self.body()
        rule = choose(self.command, self.path)
        kind = rule["kind"] if rule else None
        if kind == "before503":
            return self.s3_error(503, "SlowDown")
        if kind == "before500":
            return self.s3_error(500, "InternalError")
        if kind == "reset":
            return self.reset()
        if kind == "slow":
            time.sleep(rule.get("delay", 1.0))
        status, headers, data = self.forward(payload)
        if kind == "after500":
            return self.s3_error(500, "InternalError")
        if kind == "after_reset":
            return self.reset()
        self.answer(status, data, headers)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = handle_any


def main():
    port, upstream = int(sys.argv[1]), sys.argv[2]
    Proxy.upstream = upstream.split("://", 1)[-1].rstrip("/")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Proxy)
    server.daemon_threads = True
    print(f"faultproxy on 127.0.0.1:{port} -> {upstream}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
