"""Fingerprints of a run's JSON outputs with the run-dependent fields removed, to check a refactor changed nothing.

    python scripts/fingerprint_outputs.py demo_out /tmp/study_smoke > before.txt
    ... change the code, rerun the same commands ...
    python scripts/fingerprint_outputs.py demo_out /tmp/study_smoke | diff before.txt -

Every metrics.json, report.json, results.json, summary.json and features.json under the given folders is printed
as `<relative path> <sha256>` of its canonical JSON, after dropping keys whose values depend on the machine or
the clock (timings, throughput, the commit) and replacing the folder itself by `<root>` in strings; `--show`
prints the stripped JSON instead.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import re

NAMES = ("metrics.json", "report.json", "results.json", "summary.json", "features.json")
VOLATILE = re.compile(r"(seconds|per_sec|per_cpu_sec|_time$|^time|created|commit|machine|path|dir$|saved_models|"
                      r"workdir|^models_scored$|^output$|^input$|^files$|command|_at$)")


def strip(value, root: str):
    """`value` without volatile keys, with the output folder in strings replaced by `<root>`."""
    if isinstance(value, dict):
        return {k: strip(v, root) for k, v in value.items() if not VOLATILE.search(k)}
    if isinstance(value, list):
        return [strip(v, root) for v in value]
    if isinstance(value, str):
        return value.replace(root, "<root>")
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("roots", nargs="+")
    parser.add_argument("--show", action="store_true")
    args = parser.parse_args()
    for root in args.roots:
        for folder, dirs, files in sorted(os.walk(root)):
            dirs.sort()
            for name in sorted(files):
                if name not in NAMES:
                    continue
                path = os.path.join(folder, name)
                with open(path) as f:
                    canonical = json.dumps(strip(json.load(f), os.path.abspath(root)), sort_keys=True, indent=1)
                relative = os.path.join(os.path.basename(os.path.normpath(root)), os.path.relpath(path, root))
                if args.show:
                    print(f"== {relative}\n{canonical}")
                else:
                    print(relative, hashlib.sha256(canonical.encode()).hexdigest()[:16])


if __name__ == "__main__":
    main()
