#!/usr/bin/env python3
"""End-to-end latency: 2xx answer of a task creation -> message seen by a
kafka-python consumer on the topic (an upper bound of 2xx -> broker ack)."""
import json, os, threading, time, urllib.request
from kafka import KafkaConsumer, TopicPartition

BASE, BROKER = os.environ["TL_BASE"], os.environ["TL_BROKER"]
RATE, SECS = float(os.environ.get("RATE", "200")), float(os.environ.get("SECONDS_LOAD", "20"))

def call(method, path, body=None, token=None):
    req = urllib.request.Request(BASE + path, data=json.dumps(body).encode() if body is not None else None, method=method)
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", "Bearer " + token)
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())

token = call("POST", "/api/auth/login", {"username": "admin", "password": "bench-password"})["token"]
gid = call("POST", "/api/groups", {"name": "latency"}, token)["group"]["_id"]
seen = {}
stop = threading.Event()

def consume():
    # A short fetch wait: the default (500 ms) would measure the consumer, not the relay.
    c = KafkaConsumer(bootstrap_servers=BROKER, enable_auto_commit=False, consumer_timeout_ms=500,
                      fetch_max_wait_ms=5)
    tp = TopicPartition("todo-history-events", 0)
    c.assign([tp]); c.seek_to_end(tp)
    while not stop.is_set():
        for m in c:
            now = time.time()
            v = json.loads(m.value)
            name = (v.get("payload") or {}).get("taskName") or ""
            if name.startswith("lat-") and name not in seen:
                seen[name] = now

t = threading.Thread(target=consume); t.start()
time.sleep(2)
acked = {}
end = time.time() + SECS
i = 0
while time.time() < end:
    name = "lat-%d" % i
    call("POST", "/api/groups/%s/tasks" % gid, {"name": name}, token)
    acked[name] = time.time()
    i += 1
    time.sleep(max(0.0, 1.0 / RATE - 0.001))
deadline = time.time() + 30
while time.time() < deadline and len(seen) < len(acked):
    time.sleep(0.2)
stop.set(); t.join()
lat = sorted((seen[n] - acked[n]) * 1000 for n in acked if n in seen)
if not lat:
    print("no messages seen"); raise SystemExit(1)
p = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))]
print("end-to-end latency at %.0f creates/s over %ds: %d/%d seen, p50 %.1f ms, p99 %.1f ms, max %.1f ms"
      % (i / SECS, SECS, len(lat), len(acked), p(0.50), p(0.99), lat[-1]))
