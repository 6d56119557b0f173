#!/usr/bin/env python3
"""Counts TAP results in a meson testlog.json: prints 'passed failed skipped'.

Every 'ok' line of a test program counts as passed, 'not ok' as failed,
'# SKIP' as skipped; a program that failed without a 'not ok' (a crash, a
timeout, a bail out) counts one more failure, so nothing fails silently."""
import json
import re
import sys

passed = failed = skipped = 0
with open(sys.argv[1], encoding="utf-8", errors="replace") as log:
    for line in log:
        entry = json.loads(line)
        out = entry.get("stdout") or ""
        p = f = s = 0
        for tap in out.splitlines():
            if re.match(r"^ok \d+.*# SKIP", tap, re.IGNORECASE):
                s += 1
            elif re.match(r"^ok \d+", tap):
                p += 1
            elif re.match(r"^not ok \d+", tap):
                f += 1
        if entry.get("result") not in ("OK", "SKIP", "EXPECTEDFAIL") and f == 0:
            f = 1
        if entry.get("result") == "SKIP" and p + f + s == 0:
            s = 1
        passed += p
        failed += f
        skipped += s
print(passed, failed, skipped)
