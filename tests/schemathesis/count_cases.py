"""Cases per operation from schemathesis' NDJSON event stream (`--report ndjson`).

Counts every generated case that was sent (it has a recorded interaction), per documented
operation and phase, with the status classes of the answers and the failed checks. Usage:
    python3 count_cases.py REPORT.ndjson [MINIMUM]
With MINIMUM, exits 1 when an operation that takes input got fewer cases.
"""

import collections
import json
import sys

PHASES = ["examples", "coverage", "fuzzing", "stateful"]


def main() -> int:
    path = sys.argv[1]
    minimum = int(sys.argv[2]) if len(sys.argv) > 2 else None
    cases = collections.defaultdict(collections.Counter)
    statuses = collections.defaultdict(collections.Counter)
    failures = collections.defaultdict(collections.Counter)
    with open(path, encoding="utf-8") as events:
        for line in events:
            event = json.loads(line)
            finished = event.get("ScenarioFinished")
            if not finished:
                continue
            recorder = finished["recorder"]
            phase = finished["phase"]
            for case_id, interaction in recorder.get("interactions", {}).items():
                case = recorder["cases"].get(case_id, {}).get("value", {})
                # A scenario tests one operation (its label), also with other methods on its
                # path (the coverage phase's unsupported-method probes); a stateful scenario
                # chains several, so there each case counts for its own operation.
                if phase == "stateful":
                    operation = f"{case.get('method', '?')} {case.get('path', '?')}"
                else:
                    operation = recorder["label"]
                cases[operation][phase] += 1
                response = interaction.get("response") or {}
                code = response.get("status_code")
                statuses[operation][f"{code // 100}xx" if code else "none"] += 1
                for check in recorder.get("checks", {}).get(case_id, []):
                    if check.get("status") == "failure":
                        failures[operation][check["name"]] += 1

    width = max((len(op) for op in cases), default=10)
    header = f"{'operation':<{width}} " + " ".join(f"{p:>9}" for p in PHASES) + f" {'total':>7}  answers"
    print(header)
    short = []
    for operation in sorted(cases, key=lambda op: (op.split(" ", 1)[1], op)):
        counts = cases[operation]
        total = sum(counts.values())
        answers = ", ".join(f"{k} {v}" for k, v in sorted(statuses[operation].items()))
        failed = ", ".join(f"{k} {v}" for k, v in sorted(failures[operation].items()))
        row = f"{operation:<{width}} " + " ".join(f"{counts[p]:>9}" for p in PHASES) + f" {total:>7}  {answers}"
        print(row + (f"  FAILED: {failed}" if failed else ""))
        if minimum is not None and total < minimum:
            short.append((operation, total))
    grand = sum(sum(c.values()) for c in cases.values())
    print(f"{len(cases)} operations, {grand} cases sent, fewest {min((sum(c.values()) for c in cases.values()), default=0)}")
    if short:
        print("fewer cases than %d: %s" % (minimum, ", ".join(f"{op} ({n})" for op, n in short)))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
