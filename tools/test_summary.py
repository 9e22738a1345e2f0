# SPDX-License-Identifier: MIT
"""Adds up the results every test tier left under build/results/ and prints one line.

Understood formats, found by glob:
- *.json with "passed"/"failed"/"skipped" counts (tools/ctest.py, tools/check_float_free.py);
- **/_results.json from MicroPython's run-tests.py (`-r build/results/<name>`);
- *.xml JUnit reports (pytest --junitxml=build/results/<name>.xml).
Exits non-zero when a test failed or when no test ran at all.
"""

import json
import sys
import xml.etree.ElementTree as ET

from _cbuild import BUILD, rel

RESULTS = BUILD / "results"


def counts_of(path):
    if path.suffix == ".xml":
        root = ET.parse(path).getroot()
        suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
        tests = sum(int(s.get("tests", 0)) for s in suites)
        failed = sum(int(s.get("failures", 0)) + int(s.get("errors", 0)) for s in suites)
        skipped = sum(int(s.get("skipped", 0)) for s in suites)
        return tests - failed - skipped, failed, skipped
    data = json.loads(path.read_text())
    if "results" in data:  # run-tests.py: [[test, "pass"|"fail"|"skip"|..., reason], ...]
        kinds = [r[1] for r in data["results"]]
        return kinds.count("pass"), kinds.count("fail"), kinds.count("skip")
    return int(data["passed"]), int(data["failed"]), int(data.get("skipped", 0))


def main():
    # A set: "**" also matches no folder, so a top-level _results.json is found twice.
    files = sorted(
        {*RESULTS.glob("*.json"), *RESULTS.glob("**/_results.json"), *RESULTS.glob("*.xml")}
    )
    total = [0, 0, 0]
    for path in files:
        try:
            p, f, s = counts_of(path)
        except (ValueError, KeyError, IndexError, ET.ParseError) as e:
            print(f"summary: cannot read {rel(path)}: {e}")
            total[1] += 1
            continue
        print(f"  {rel(path)}: {p} passed, {f} failed, {s} skipped")
        for i, n in enumerate((p, f, s)):
            total[i] += n
    passed, failed, skipped = total
    print(f"total: {passed} passed, {failed} failed, {skipped} skipped")
    if passed == 0 and failed == 0:
        print("summary: no test ran")
        return 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
