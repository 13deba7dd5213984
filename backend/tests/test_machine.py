"""The suite's machine lock: alone() waits for the tests that run, and holds off the ones that would start."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from backend.tests.machine import MachineLock


def test_alone_waits_for_running_tests_and_holds_off_new_ones(tmp_path: Path) -> None:
    me, other, late = (MachineLock(tmp_path) for _ in range(3))  # three workers: separate open files
    me.enter()
    other.enter()
    order: list[str] = []

    def alone() -> None:
        with me.alone():
            order.append("alone: start")
            time.sleep(0.3)
            order.append("alone: end")

    def late_test() -> None:
        late.enter()
        order.append("late test starts")
        late.leave()

    t = threading.Thread(target=alone)
    t.start()
    time.sleep(0.2)
    assert order == []  # the other worker's test still runs
    u = threading.Thread(target=late_test)
    u.start()
    time.sleep(0.2)
    assert order == [], "a test may not start while alone() waits (the turnstile)"
    order.append("other test ends")
    other.leave()
    t.join(5)
    u.join(5)
    assert order == ["other test ends", "alone: start", "alone: end", "late test starts"]
    me.leave()
    for lock in (me, other, late):
        lock.close()
