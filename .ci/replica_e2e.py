"""Replica end to end, driven over HTTP with the standard library only.

Every step ends with the replica's API state equal to the primary's at equal
lastEventId; a timing is never the proof, the comparison is."""
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

PRIMARY = os.environ["TL_PRIMARY"]
RPORT = os.environ["TL_REPLICA_PORT"]
REPLICA = f"http://127.0.0.1:{RPORT}"
BIN = os.environ["TL_BIN"]
WORK = os.environ["TL_WORK"]


def call(base, method, path, body=None, token=None, headers=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", "Bearer " + token)
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read() or b"null"), r.headers
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null"), e.headers


def login():
    st, v, _ = call(PRIMARY, "POST", "/api/auth/login", {"username": "admin", "password": "e2e-password"})
    assert st == 200, v
    return v["token"]


def health(base):
    return call(base, "GET", "/api/health")[1]


def state(base, token):
    out = {}
    for path in ["/api/groups", "/api/auth/users", "/api/logs/groups"]:
        st, v, _ = call(base, "GET", path, token=token)
        assert st == 200, (base, path, st, v)
        out[path] = v
    for g in out["/api/logs/groups"]["groups"]:
        p = f"/api/logs/group/{g['group_id']}?limit=1000"
        out[p] = call(base, "GET", p, token=token)[1]
    return out


def start_replica():
    log = open(os.path.join(WORK, "replica.log"), "a")
    return subprocess.Popen(
        [BIN, "replica", "--addr", f"127.0.0.1:{RPORT}", "--data-dir", f"{WORK}/r/storage",
         "--backup-dir", f"{WORK}/r/backups", "--restore-dir", f"{WORK}/r/restore"],
        stdout=log, stderr=log, env=dict(os.environ, PRIMARY_URL=PRIMARY))


def same(step, token):
    deadline = time.time() + 60
    while True:
        want = health(PRIMARY)["lastEventId"]
        try:
            h = health(REPLICA)
        except Exception:
            h = {}
        if h.get("appliedSeq") == want and h.get("lastEventId") == want:
            p, r = state(PRIMARY, token), state(REPLICA, token)
            if health(PRIMARY)["lastEventId"] == want:
                assert r == p, f"{step}: the replica's state differs from the primary's at {want}"
                print(f"ok   {step}: equal at lastEventId {want} ({h['state']}, lag {h['lagSeconds']} s)")
                return want
        if time.time() > deadline:
            sys.exit(f"FAIL {step}: replica at {h} while the primary is at {want}")
        time.sleep(0.1)


def writes(token, n):
    """n writes of every kind, from 4 threads."""
    errors = []

    def worker(k):
        try:
            for r in range(n // 4 // 6):
                st, g, _ = call(PRIMARY, "POST", "/api/groups", {"name": f"G{k}.{r}"}, token)
                gid = g["group"]["_id"]
                st, t, _ = call(PRIMARY, "POST", f"/api/groups/{gid}/tasks", {"name": "T", "description": "d"}, token)
                tid = t["task"]["_id"]
                call(PRIMARY, "PUT", f"/api/tasks/{tid}/status", {"status": "In Progress"}, token)
                call(PRIMARY, "PUT", f"/api/tasks/{tid}", {"name": "T renamed"}, token)
                call(PRIMARY, "POST", f"/api/tasks/{tid}/comments", {"text": "c"}, token)
                if r % 5 == 4:
                    call(PRIMARY, "DELETE", f"/api/groups/{gid}", token=token)
                else:
                    call(PRIMARY, "PUT", f"/api/groups/{gid}", {"discussion": "x"}, token)
        except Exception as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors


def main():
    token = login()
    writes(token, 600)
    st, b, _ = call(PRIMARY, "POST", "/api/backup/create", {"label": "seed"}, token)
    assert st == 201, b
    deadline = time.time() + 60
    while health(PRIMARY)["backup"]["offsite"]["pending"] != 0:
        assert time.time() < deadline, "the backup never reached the bucket"
        time.sleep(0.2)
    print("ok   a backup is off-site")
    writes(token, 600)
    replica = start_replica()
    same("bootstrap from the off-site copy plus the topic tail", token)
    with open(os.path.join(WORK, "replica.log")) as f:
        log = f.read()
    assert "replica bootstrapped from a backup" in log, "the replica did not start from the off-site backup"

    writes(token, 300)
    st, r, _ = call(PRIMARY, "POST", "/api/backup/restore", {"backupName": b["backup"]["name"]}, token)
    assert st == 200, r
    same("restore on the primary (a new generation)", token)

    replica.send_signal(signal.SIGKILL)
    replica.wait()
    writes(token, 300)
    replica = start_replica()
    same("kill -9 of the replica, writes, restart", token)

    other = login()
    same("a second login", token)
    deadline = time.time() + 30
    while call(REPLICA, "GET", "/api/groups", token=other)[0] != 200:
        assert time.time() < deadline, "a primary token never worked on the replica"
        time.sleep(0.1)
    call(PRIMARY, "POST", "/api/auth/logout", token=other)
    deadline = time.time() + 30
    while call(REPLICA, "GET", "/api/groups", token=other)[0] != 401:
        assert time.time() < deadline, "the replica still accepts a token logged out on the primary"
        time.sleep(0.1)
    print("ok   a logout on the primary is honoured by the replica")
    st, _, hdrs = call(REPLICA, "POST", "/api/groups?via=replica", {"name": "x"}, token)
    assert st == 307 and hdrs["Location"] == PRIMARY + "/api/groups?via=replica", (st, dict(hdrs))
    st, v, hdrs = call(PRIMARY, "POST", "/api/groups?via=replica", {"name": "x"}, token)
    assert st == 201, v
    seq = hdrs["X-Taskledger-Seq"]
    st, g, _ = call(REPLICA, "GET", f"/api/groups/{v['group']['_id']}", token=token,
                    headers={"X-Taskledger-Min-Seq": seq})
    assert st == 200, (st, g)
    print("ok   a write sent to the replica is redirected; read-your-writes on the replica")
    same("the end", token)
    replica.terminate()
    replica.wait()
    print("replica e2e passed")


if __name__ == "__main__":
    main()
