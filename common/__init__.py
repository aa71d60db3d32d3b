"""Shared core of WorkStream: settings, job model, state machine, Redis keys and Lua scripts."""
