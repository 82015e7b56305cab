"""Zero-downtime upgrade walk (SPEC §12 "Upgrades"), as a client sees it.

The old node (OLD) is the primary, the new one (NEW) a live replica. Writers
create groups on OLD; after WARM seconds NEW is promoted; a writer that gets a
refusal from OLD (503 fenced) or a redirect moves to NEW. Prints the promotion
time, the time from the promote call to the first write acknowledged by NEW,
and the longest pause between two acknowledged writes; fails if any
acknowledged write is missing on NEW.

usage: upgrade_walk.py OLD_PORT NEW_PORT PASSWORD [WARM=2] [AFTER=2] [WRITERS=8]
"""
import json
import sys
import threading
import time
import urllib.error
import urllib.request

old, new, password = sys.argv[1], sys.argv[2], sys.argv[3]
warm = float(sys.argv[4]) if len(sys.argv) > 4 else 2.0
after = float(sys.argv[5]) if len(sys.argv) > 5 else 2.0
writers = int(sys.argv[6]) if len(sys.argv) > 6 else 8


def call(port, method, path, token=None, body=None, timeout=30):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, data=data, timeout=timeout) as r:
            return r.status, json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")
    except OSError:
        return 0, {}


token = call(old, "POST", "/api/auth/login", body={"username": "admin", "password": password})[1]["token"]
lock = threading.Lock()
acked = []  # (time, name, port)
stop = threading.Event()


def writer(w):
    port, i = old, 0
    while not stop.is_set():
        name = f"walk-{w}-{i}"
        i += 1
        status, _ = call(port, "POST", "/api/groups", token, {"name": name})
        if 200 <= status < 300:
            with lock:
                acked.append((time.time(), name, port))
        elif port == old:
            port = new  # refused (fenced, or redirected): the new primary
        else:
            time.sleep(0.01)


threads = [threading.Thread(target=writer, args=(w,)) for w in range(writers)]
for t in threads:
    t.start()
time.sleep(warm)
t0 = time.time()
status, promoted = call(new, "POST", "/api/admin/promote", token, timeout=120)
t1 = time.time()
assert status == 200, f"promote answered {status}: {promoted}"
time.sleep(after)
stop.set()
for t in threads:
    t.join()

acked.sort()
on_new = [a for a in acked if a[2] == new]
assert on_new, "no write was acknowledged by the new primary"
first_new = on_new[0][0] - t0
gaps = [b[0] - a[0] for a, b in zip(acked, acked[1:])]
pause = max(gaps) if gaps else 0.0
_, groups = call(new, "GET", "/api/groups", token)
names = {g["name"] for g in groups["groups"]}
lost = [a[1] for a in acked if a[1] not in names]
assert not lost, f"{len(lost)} acknowledged writes missing on the new primary: {lost[:5]}"
print(
    f"promote {t1 - t0:.3f} s; first write acknowledged by the new primary {first_new:.3f} s after the promote call; "
    f"longest pause between acknowledged writes {pause:.3f} s; {len(acked)} writes acknowledged "
    f"({len(acked) - len(on_new)} by the old, {len(on_new)} by the new), none lost"
)
