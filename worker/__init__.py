"""WorkStream worker: one fetcher, a pool of job slots, heartbeats, scheduler and sweeper."""
