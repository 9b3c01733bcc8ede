#!/usr/bin/env python3
"""Publishes a message to hasses twice: on the control port (one JSON line,
answered with the event id) and through the HTTP API. Standard library only.
  python3 publish.py TOKEN MESSAGE
Environment: HASSES_CTL (127.0.0.1:8085), HASSES_PUB
(http://127.0.0.1:8086/publish), HASSES_CTL_SECRET (if the server has one)."""
import json, os, socket, sys, urllib.error, urllib.request

token = sys.argv[1] if len(sys.argv) > 1 else "room1"
message = sys.argv[2] if len(sys.argv) > 2 else "hello from Python"
host, port = os.environ.get("HASSES_CTL", "127.0.0.1:8085").rsplit(":", 1)
pub = os.environ.get("HASSES_PUB", "http://127.0.0.1:8086/publish")
secret = os.environ.get("HASSES_CTL_SECRET", "")
body = json.dumps({"token": token, "data": message})

# Control port (a plain "token=message;" works too, without a reply).
with socket.create_connection((host.strip("[]"), int(port)), timeout=5) as s:
    s.sendall(((f"auth {secret}\n" if secret else "") + body + "\n").encode())
    lines = s.makefile(encoding="utf-8")
    reply = next(l for l in lines if not l.startswith('{"auth"'))
print("control port:", reply.strip())

# HTTP API.
headers = {"Content-Type": "application/json"}
if secret:
    headers["Authorization"] = "Bearer " + secret
req = urllib.request.Request(pub, data=body.encode(), headers=headers)
try:
    with urllib.request.urlopen(req, timeout=5) as resp:
        print("HTTP API:", resp.read().decode().strip())
except urllib.error.HTTPError as e:  # 4xx: the body says why
    print("HTTP API:", e.code, e.read().decode().strip())
    sys.exit(1)
