"""Thin Lambda / Fargate handlers: one module per Task state of statemachine/sadtalker.asl.json.

Each handler parses its event with a pydantic model (``events.py``), builds the storage, job keys,
parameters and model store, calls the library's stage function and returns small JSON (keys, counts,
timings). Named errors propagate unchanged, so their class name is the Lambda ``errorType`` the state
machine's Retry/Catch rules match.
"""
