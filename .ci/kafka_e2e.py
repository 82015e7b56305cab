#!/usr/bin/env python3
"""End-to-end check of the Kafka mirror: taskledger and a Kafka-protocol broker
(tansu) run as separate processes; kafka-python, an independent client, reads
what reached the topic. The broker is paused (SIGSTOP) for PAUSE seconds while
writes go on; afterwards every event must be on the topic, in log order."""
import json
import os
import signal
import sys
import time
import urllib.request

from kafka import KafkaConsumer, TopicPartition

BASE = os.environ["TL_BASE"]
BROKER = os.environ["TL_BROKER"]
BROKER_PID = int(os.environ["TL_BROKER_PID"])
TOPIC = os.environ.get("KAFKA_TOPIC", "todo-history-events")
PAUSE = int(os.environ.get("PAUSE", "60"))


def call(method, path, body=None, token=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(BASE + path, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", "Bearer " + token)
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def fail(msg):
    print("E2E FAILED: " + msg)
    sys.exit(1)


token = call("POST", "/api/auth/login", {"username": "admin", "password": "e2e-password"})["token"]
g = call("POST", "/api/groups", {"name": "Project Alpha"}, token)["group"]["_id"]
t = call("POST", "/api/groups/%s/tasks" % g, {"name": "Feature X"}, token)["task"]["_id"]
call("POST", "/api/tasks/%s/comments" % t, {"text": "first"}, token)
call("PUT", "/api/tasks/%s/status" % t, {"status": "In Progress"}, token)

print("pausing the broker for %ds while writing" % PAUSE)
os.kill(BROKER_PID, signal.SIGSTOP)
slowest = 0.0
try:
    deadline = time.time() + PAUSE
    i = 0
    while time.time() < deadline:
        t0 = time.time()
        call("POST", "/api/groups/%s/tasks" % g, {"name": "during outage %d" % i}, token)
        slowest = max(slowest, time.time() - t0)
        i += 1
        time.sleep(0.2)
    health = call("GET", "/api/health")
    print("during the outage: %d writes, slowest %.3fs, kafka=%s" % (i, slowest, health["kafka"]))
finally:
    os.kill(BROKER_PID, signal.SIGCONT)
if slowest > 1.0:
    fail("a write took %.3fs while the broker was down" % slowest)
if health["kafka"]["lag"] == 0:
    fail("lag stayed 0 with the broker paused")

call("DELETE", "/api/tasks/%s" % t, None, token)
last = call("GET", "/api/health")["lastEventId"]
want = list(range(2, last + 1))  # event 1 is the admin user: never published

consumer = KafkaConsumer(bootstrap_servers=BROKER, enable_auto_commit=False,
                         consumer_timeout_ms=2000)
tp = TopicPartition(TOPIC, 0)
consumer.assign([tp])
consumer.seek_to_beginning(tp)
seen, first_order, messages = set(), [], {}
deadline = time.time() + 120
while time.time() < deadline and len(seen) < len(want):
    for m in consumer:
        headers = dict(m.headers or [])
        if b"taskledger-event-id" not in headers and "taskledger-event-id" not in headers:
            continue
        raw = headers.get("taskledger-event-id") or headers.get(b"taskledger-event-id")
        eid = int(raw)
        if eid not in seen:
            seen.add(eid)
            first_order.append(eid)
            messages[eid] = (m.key, json.loads(m.value))
print("consumed %d distinct events, want %d (ids 2..%d)" % (len(seen), len(want), last))
if first_order != want:
    missing = sorted(set(want) - seen)
    fail("order or completeness: missing=%s first=%s" % (missing[:10], first_order[:10]))
key, created = messages[3]
if key.decode() != g:
    fail("key is not the group id: %r" % key)
p = created["payload"]
expect = {"entity": "Task", "entityId": t, "groupId": g, "groupName": "Project Alpha", "taskId": t,
          "taskName": "Feature X", "changes": "Task 'Feature X' was created", "user": "admin",
          "workspace": "default"}
for k, v in expect.items():
    if p.get(k) != v:
        fail("payload %s = %r, want %r" % (k, p.get(k), v))
if created["eventType"] != "created" or created["timestamp"] != p["timestamp"]:
    fail("envelope: %r" % created)
print("E2E OK: %d events mirrored in order through a %ds broker outage" % (len(want), PAUSE))
