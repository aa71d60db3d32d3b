"""WorkStream's benchmark harness: WorkStream against Huey, Dramatiq, Celery, RQ and arq on one
private redis-server. Run it with `python -m bench` (see bench/README.md)."""
