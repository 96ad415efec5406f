"""`python -m chat_api` freezes the heap it built at startup before it serves (chat_api.server), so
the garbage collector's full collections do not walk the app's ~160,000 objects with every
stream stalled. Run in a child process: freezing the test process would leak what it froze."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from child_env import chat_api_env

pytestmark = pytest.mark.unit

# The child replaces uvicorn's run with a report of the collector's state at that moment.
PROBE = """
import gc, json, sys
import chat_api.server as server
server.DrainingServer.run = lambda self: print(json.dumps({"frozen": gc.get_freeze_count()}))
sys.exit(server.main())
"""


def test_the_startup_heap_is_frozen_before_serving() -> None:
    env = chat_api_env(CHAT_API_DATABASE_URL="")
    done = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    frozen = json.loads(done.stdout.strip().splitlines()[-1])["frozen"]
    # The app, its routes, schemas and imported modules; a bare interpreter tracks some 10,000.
    assert frozen > 50_000, frozen
