"""Load on `stmon serve`: many psycopg sessions at once, small and heavy queries.

    python3 serveload.py PORT PASSWORD SESSIONS HEAVY STOP_FILE MAX_SECONDS PAUSE

SESSIONS sessions connect at once (each its own connection); HEAVY of them
run heavy queries in a loop (a self cross join of marts.indicators: a
16-million-row aggregate, a distinct count whose hash table outgrows a
query's memory, a result too large to return), the others a small query
that reads one value from staging and one from marts, which one run
changes together, pausing PAUSE seconds after each (an analyst's pace). All stop once STOP_FILE exists and a few refreshes have
passed, or after MAX_SECONDS. Prints JSON: the sessions that connected, every
distinct pair the small query returned, the small queries' latencies (count,
median, p99, max, in seconds), their errors, and the heavy queries'
outcomes by SQLSTATE ("ok" when answered).
"""

import json
import os
import sys
import threading
import time

import psycopg

port, password, sessions, heavy = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
stop_file, max_seconds, pause = sys.argv[5], float(sys.argv[6]), float(sys.argv[7])
dsn = f"host=127.0.0.1 port={port} user=analyst dbname=stmon password='{password}' connect_timeout=30"

SMALL = """select d.rd_expenditure, round(m.value, 6)
  from intermediate.division_enterprise d join marts.indicators m
    on m.division_code = d.division_code and m.year = d.year and m.as_of_month = d.as_of_month
  where d.year = 2023 and d.as_of_month = 6 and d.division_code = '330602' and m.indicator_id = 'rd_intensity'"""
HEAVY = [
    "select a.indicator_id, b.as_of_month, count(*), sum(coalesce(a.value, 0) * coalesce(b.value, 0)) "
    "from marts.indicators a cross join marts.indicators b group by 1, 2",
    "select count(distinct concat(a.division_code, a.indicator_id, cast(a.as_of_month as varchar), "
    "b.division_code, b.indicator_id, cast(b.as_of_month as varchar))) "
    "from marts.indicators a cross join marts.indicators b",
    "select a.*, b.* from marts.indicators a cross join marts.indicators b",
]

lock = threading.Lock()
out = {"connected": 0, "pairs": [], "latencies": [], "small_errors": [], "heavy": {}, "connect_errors": []}
start = time.time()
ready = threading.Barrier(sessions)
stopping = {"at": None}


def done():
    now = time.time()
    if now - start > max_seconds:
        return True
    if os.path.exists(stop_file):
        if stopping["at"] is None:
            stopping["at"] = now
        # Until the published run is seen (two pairs) and 2 s more, at most 240 s.
        if len(out["pairs"]) >= 2 and stopping.get("seen") is None:
            stopping["seen"] = now
        if stopping.get("seen") is not None:
            return now - stopping["seen"] > 2.0
        return now - stopping["at"] > 240.0
    return False


def worker(i):
    try:
        conn = psycopg.connect(dsn, autocommit=True)
    except Exception as e:
        with lock:
            out["connect_errors"].append(str(e)[:200])
        ready.abort()
        return
    with lock:
        out["connected"] += 1
    try:
        ready.wait(timeout=60)
    except threading.BrokenBarrierError:
        pass
    n = 0
    with conn:
        while not done():
            if i < heavy:
                q = HEAVY[(i + n) % len(HEAVY)]
                try:
                    conn.execute(q).fetchall()
                    key = "ok"
                except psycopg.Error as e:
                    key = e.sqlstate or type(e).__name__
                with lock:
                    out["heavy"][key] = out["heavy"].get(key, 0) + 1
            else:
                t = time.time()
                try:
                    pair = [float(x) for x in conn.execute(SMALL).fetchone()]
                except psycopg.Error as e:
                    with lock:
                        out["small_errors"].append([e.sqlstate, str(e)[:200]])
                    continue
                took = time.time() - t
                with lock:
                    out["latencies"].append(took)
                    if pair not in out["pairs"]:
                        out["pairs"].append(pair)
                time.sleep(pause)
            n += 1


threads = [threading.Thread(target=worker, args=(i,)) for i in range(sessions)]
for t in threads:
    t.start()
for t in threads:
    t.join()
lat = sorted(out.pop("latencies"))


def q(p):
    return lat[min(len(lat) - 1, int(p * len(lat)))] if lat else None


out["small"] = {"count": len(lat), "median": q(0.5), "p99": q(0.99), "max": lat[-1] if lat else None}
out["seconds"] = time.time() - start
print(json.dumps(out))
sys.stdout.flush()
os._exit(0)
