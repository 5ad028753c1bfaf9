"""Tiny Lambda handlers for the local executor's tests: echo, sleep, crash, raise, allocate."""

import os
import sys
import time

print("echo fixture: init")  # an init-phase line: appears before START in the first invoke's logs


def handler(event, context):
    """Return the event with the request id and a few Lambda environment facts."""
    print(f"echo fixture: handling {context.aws_request_id}")
    return {
        "event": event,
        "request_id": context.aws_request_id,
        "function_name": os.environ.get("AWS_LAMBDA_FUNCTION_NAME"),
        "memory_size": os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE"),
        "endpoint": os.environ.get("AWS_ENDPOINT_URL"),
        "region": os.environ.get("AWS_REGION"),
        "remaining_ms": context.get_remaining_time_in_millis(),
        "pid": os.getpid(),
    }


def sleep(event, context):
    """Sleep event['seconds'] (to run past the timeout)."""
    print("echo fixture: sleeping", flush=True)
    time.sleep(float(event.get("seconds", 10)))
    return {"slept": event.get("seconds")}


def window(event, context):
    """Sleep event['seconds']; return this environment's pid and the wall-clock span it slept in."""
    start = time.time()
    time.sleep(float(event.get("seconds", 1)))
    return {"pid": os.getpid(), "start": start, "end": time.time()}


def crash(event, context):
    """Exit the runtime process with event['code'] (a hard crash, not an exception)."""
    print("echo fixture: crashing", flush=True)
    sys.stdout.flush()
    os._exit(int(event.get("code", 3)))


class FixtureError(Exception):
    """A named error the handler raises."""


def fail(event, context):
    """Raise FixtureError (comes back as a function error with the Lambda error JSON)."""
    raise FixtureError(f"asked to fail: {event.get('why', 'no reason')}")


def allocate(event, context):
    """Hold event['mb'] MiB of touched memory for a moment (memory limit and Max Memory Used)."""
    block = bytearray(int(event.get("mb", 64)) * 1024 * 1024)
    for i in range(0, len(block), 4096):
        block[i] = 1
    time.sleep(float(event.get("hold", 0.5)))
    return {"allocated_mb": len(block) // (1024 * 1024)}


def pause(event, context):
    """Sleep event['seconds'], then return the event and this environment's pid (concurrency checks)."""
    time.sleep(float(event.get("seconds", 0.3)))
    return {"event": event, "pid": os.getpid()}


def orphan(event, context):
    """Start a long-lived child, then crash: the child must not outlive the environment."""
    import subprocess

    child = subprocess.Popen(["sleep", "300"])
    print(f"echo fixture: child {child.pid}", flush=True)
    os._exit(9)
