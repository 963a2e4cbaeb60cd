"""Prefect 3.9.1's server on the calls orion's `server` bench measures, on this machine.

Starts `prefect server start` (SQLite, isolated PREFECT_HOME, analytics and UI off), stores
N_RUNS flow runs of one deployment (default 100,000) through the API, then measures:
listing the newest 200 runs, and creating a run from the deployment: latency percentiles of
sequential calls over one keep-alive connection, and requests per second with 8 concurrent
clients. Run with Prefect's venv:

    $PREFECT_VENV/bin/python benches/prefect/bench_api.py
"""

import asyncio
import json
import os
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time

import httpx

N_RUNS = int(os.environ.get("N_RUNS", "100000"))
SEQUENTIAL = int(os.environ.get("SEQUENTIAL", "300"))
CONCURRENT_SECONDS = float(os.environ.get("CONCURRENT_SECONDS", "10"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def post(client, url, body):
    """A POST, sent again while the server answers 503 (SQLite busy), as Prefect's client does."""
    for _ in range(100):
        r = await client.post(url, json=body)
        if r.status_code != 503:
            return r
        await asyncio.sleep(0.05)
    return r


def pct(values, p):
    values = sorted(values)
    return values[round((len(values) - 1) * p)] * 1000


def seed(db_path, template_id):
    """N_RUNS copies of the run `template_id`, written straight into Prefect's SQLite file
    (through the API this takes over an hour here): fresh ids and names, times one second
    apart going back from the template's, the same flow, deployment and state."""
    started = time.perf_counter()
    db = sqlite3.connect(db_path, timeout=60)
    columns = [c[1] for c in db.execute("PRAGMA table_info(flow_run)")]
    uuid = (
        "lower(hex(randomblob(4))) || '-' || lower(hex(randomblob(2))) || '-4' || "
        "substr(lower(hex(randomblob(2))), 2) || '-a' || substr(lower(hex(randomblob(2))), 2) || "
        "'-' || lower(hex(randomblob(6)))"
    )
    shifted = "strftime('%Y-%m-%d %H:%M:%f', t.{c}, '-' || n.i || ' seconds') || '000'"
    values = []
    for c in columns:
        if c == "id":
            values.append(uuid)
        elif c == "name":
            values.append("'seed-' || n.i")
        elif c in ("created", "updated", "expected_start_time", "start_time", "end_time", "state_timestamp"):
            values.append(f"CASE WHEN t.{c} IS NULL THEN NULL ELSE {shifted.format(c=c)} END")
        else:
            values.append(f"t.{c}")
    db.execute(
        f"WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?) "
        f"INSERT INTO flow_run ({', '.join(columns)}) "
        f"SELECT {', '.join(values)} FROM flow_run AS t, n WHERE t.id = ?",
        (N_RUNS - 1, template_id),
    )
    db.commit()
    count = db.execute("SELECT count(*) FROM flow_run").fetchone()[0]
    db.execute("ANALYZE")
    db.close()
    assert count == N_RUNS, count
    return time.perf_counter() - started


async def measure(client, name, call):
    for _ in range(10):
        await call(client)
    times = []
    for _ in range(SEQUENTIAL):
        t0 = time.perf_counter()
        await call(client)
        times.append(time.perf_counter() - t0)
    done = 0
    stop = time.perf_counter() + CONCURRENT_SECONDS

    async def worker():
        nonlocal done
        async with httpx.AsyncClient(base_url=client.base_url, timeout=60) as own:
            while time.perf_counter() < stop:
                await call(own)
                done += 1

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(8)))
    rate = done / (time.perf_counter() - t0)
    result = {
        "bench": name,
        "p50_ms": round(pct(times, 0.5), 3),
        "p99_ms": round(pct(times, 0.99), 3),
        "mean_ms": round(statistics.mean(times) * 1000, 3),
        "req_per_s_8_clients": round(rate, 1),
    }
    print(json.dumps(result), flush=True)


async def main(port):
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}/api", timeout=60) as client:
        for _ in range(600):
            try:
                if (await client.get("/health")).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.1)
        for _ in range(60):
            made = await client.post("/flows/", json={"name": "bench"})
            if made.status_code != 503:
                break
            await asyncio.sleep(0.5)
        flow = made.json()
        for _ in range(60):
            made = await client.post("/deployments/", json={"name": "bench", "flow_id": flow["id"]})
            if made.status_code != 503:
                break
            await asyncio.sleep(0.5)
        if made.status_code >= 300:
            raise SystemExit(f"creating the deployment: {made.status_code} {made.text}")
        deployment = made.json()
        template = await post(
            client,
            "/flow_runs/",
            {"flow_id": flow["id"], "deployment_id": deployment["id"], "state": {"type": "COMPLETED"}},
        )
        seconds = seed(os.path.join(os.environ["PREFECT_HOME"], "prefect.db"), template.json()["id"])
        print(json.dumps({"bench": "seed", "runs": N_RUNS, "seconds": round(seconds, 1)}), flush=True)

        async def newest(c):
            r = await c.post("/flow_runs/filter", json={"limit": 200, "sort": "EXPECTED_START_TIME_DESC"})
            r.raise_for_status()
            assert len(r.json()) == min(200, N_RUNS)

        async def create(c):
            r = await post(c, f"/deployments/{deployment['id']}/create_flow_run", {})
            r.raise_for_status()

        await measure(client, "list newest 200 runs", newest)
        await measure(client, "create a run from a deployment", create)


if __name__ == "__main__":
    home = tempfile.mkdtemp(prefix="prefect-api-bench-")
    env = dict(os.environ)
    env.update(
        PREFECT_HOME=home,
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_SERVER_UI_ENABLED="false",
        PREFECT_TELEMETRY_ENABLE_RESOURCE_METRICS="false",
    )
    env.pop("PREFECT_API_URL", None)
    os.environ["PREFECT_HOME"] = home
    port = free_port()
    server = subprocess.Popen(
        [os.path.join(os.path.dirname(sys.executable), "prefect"), "server", "start",
         "--host", "127.0.0.1", "--port", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    try:
        asyncio.run(main(port))
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait()
        shutil.rmtree(home, ignore_errors=True)
