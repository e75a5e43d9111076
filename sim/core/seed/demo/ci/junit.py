"""Run the unittest suite and write a JUnit XML report (report.xml) for GitLab CI.

Standard library only, so the CI job needs nothing installed. Exits 1 when a test fails
or errors, 0 otherwise.

    python3 ci/junit.py [--output report.xml] [--start tests]
"""

import argparse
import sys
import time
import traceback
import unittest
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


class RecordingResult(unittest.TextTestResult):
    """A text result that also remembers each test's outcome and duration."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.cases = []
        self._started = 0.0

    def startTest(self, test):
        self._started = time.perf_counter()
        super().startTest(test)

    def _record(self, test, outcome, detail=""):
        self.cases.append((test, outcome, detail, time.perf_counter() - self._started))

    def addSuccess(self, test):
        super().addSuccess(test)
        self._record(test, "passed")

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._record(test, "failure", "".join(traceback.format_exception(*err)))

    def addError(self, test, err):
        super().addError(test, err)
        self._record(test, "error", "".join(traceback.format_exception(*err)))

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        self._record(test, "skipped", reason)


def junit_xml(cases, elapsed):
    suite = ET.Element(
        "testsuite",
        name="unittest",
        tests=str(len(cases)),
        failures=str(sum(1 for c in cases if c[1] == "failure")),
        errors=str(sum(1 for c in cases if c[1] == "error")),
        skipped=str(sum(1 for c in cases if c[1] == "skipped")),
        time=f"{elapsed:.3f}",
    )
    for test, outcome, detail, duration in cases:
        class_name = f"{type(test).__module__}.{type(test).__qualname__}"
        name = getattr(test, "_testMethodName", str(test))
        case = ET.SubElement(suite, "testcase", classname=class_name, name=name, time=f"{duration:.3f}")
        if outcome in ("failure", "error"):
            message = detail.strip().splitlines()[-1] if detail.strip() else outcome
            ET.SubElement(case, outcome, message=message, type=outcome).text = detail
        elif outcome == "skipped":
            ET.SubElement(case, "skipped", message=detail)
    suites = ET.Element("testsuites")
    suites.append(suite)
    return ET.ElementTree(suites)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default="report.xml")
    parser.add_argument("--start", default="tests")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    tests = unittest.defaultTestLoader.discover(str(ROOT / args.start), top_level_dir=str(ROOT))
    runner = unittest.TextTestRunner(resultclass=RecordingResult, verbosity=2)
    started = time.perf_counter()
    result = runner.run(tests)
    tree = junit_xml(result.cases, time.perf_counter() - started)
    tree.write(args.output, encoding="utf-8", xml_declaration=True)
    print(f"JUnit report written to {args.output}")
    return 0 if result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main())
