"""`workstream`: the operator command line for the WorkStream REST API, and `workstream dev`,
the embedded stack (Redis, API, workers) that `make run` starts."""
