"""GET /events response cost in process (Falcon TestClient, private redis-server, 3,000
created events spread over the shards): the median time of a response resuming from the
oldest entry, served from the hubs' buffers (`hub_buffer`) and, for an API whose hubs started
after the entries were written, from XRANGE pages (`redis_pages`).

    python -m bench.events_read [ROUNDS] [QUEUE_SHARDS]
    python -m bench.events_read 60                       # one stream
    python -m bench.events_read 60 emails:a,images:b     # three shards, merged

Run from a tree's root with -m to measure that tree's code (old vs new: `git archive` the old
commit into a folder and alternate). Note: the single-stream path answers a reader inside the
hub's buffer with every entry there is up to 5,000 (here 3,000 events a response); the merged
path stops at 500, so compare `hub_buffer` per event, not per response."""

from __future__ import annotations

import json
import statistics
import sys
import threading
import time

import falcon.testing
import redis

from bench.redis_server import RedisServer
from workstream.api.app import create_app
from workstream.common.jobs import JobSpec
from workstream.common.settings import Settings
from workstream.common.shards import open_store

ROUNDS = int(sys.argv[1]) if len(sys.argv) > 1 else 100
SHARDS = sys.argv[2] if len(sys.argv) > 2 else ""


def main() -> None:
    with RedisServer() as server:
        env = {"REDIS_URL": server.url, "EVENTS_HOLD": "10ms"}
        if SHARDS:
            env["QUEUE_SHARDS"] = SHARDS
        settings = Settings.from_environ(env)
        store = open_store(redis.Redis.from_url(server.url, decode_responses=True), settings)
        queues = ["default"] + [pair.split(":")[0] for pair in SHARDS.split(",") if pair]
        stopping = threading.Event()
        client = falcon.testing.TestClient(create_app(settings, store, stopping=stopping))
        client.simulate_get("/events")  # hubs start at the (empty) end
        time.sleep(0.5)
        for i in range(3000):
            store.enqueue(JobSpec(type="t", queue=queues[i % len(queues)]))
        time.sleep(1.5)  # the hubs have read them
        late = falcon.testing.TestClient(create_app(settings, store, stopping=stopping))
        late.simulate_get("/events")  # its hubs start at the end: since=0 reads XRANGE pages
        time.sleep(0.5)
        out = {}
        for name, api in (("hub_buffer", client), ("redis_pages", late)):
            times = []
            for _ in range(ROUNDS):
                started = time.perf_counter()
                result = api.simulate_get("/events", headers={"Last-Event-ID": "0"})
                times.append(time.perf_counter() - started)
                assert result.text.count("\nevent: created") >= 500, result.text[:300]
            out[name] = round(statistics.median(times) * 1000, 3)
        stopping.set()
        print(json.dumps(out))


if __name__ == "__main__":
    main()
