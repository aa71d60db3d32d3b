"""Helpers shared by the test suites: a private redis-server, stack processes, polling."""
