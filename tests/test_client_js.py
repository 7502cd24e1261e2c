"""
The web client's pure modules (timelines, backoff, completion, input history, the
outbox, text helpers) under ``node --test``: their logic is checked without a browser,
and the browser tests (test_browser.py) check them working together.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from support import unavailable

JS_TESTS = Path(__file__).parent / "js"


def test_client_modules_pass_their_node_tests() -> None:
    node = shutil.which("node")
    if node is None:
        unavailable("node is not installed (Debian: apt-get install nodejs)")
    result = subprocess.run(
        [node, "--test", *sorted(str(path) for path in JS_TESTS.glob("*.test.mjs"))],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "# fail 0" in result.stdout
