"""The peer job queues: one module per peer (tasks and a `System` adapter), run with the
interpreter of bench/.venv-peers through `python -m bench.peers.run_peer`."""
