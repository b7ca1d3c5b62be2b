"""Faults: each scenario of ``tests/faults.py``, run several times, and what came of it.

Two Daphnes on a PostgreSQL and a Redis of this run's own, behind round-robin balancers; a
producer streams into a line, viewers follow on both processes, and one fault is done to the
cluster. For each fault it prints the points streamed, the acknowledged changes lost (the goal
is 0), those stored twice, the viewers that did not end with the stored document, the time from
the end of the fault until every change made before it had reached every viewer, and what the
clients saw: reconnections and error messages by code.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
from collections import Counter

from common import machine, revision  # noqa: I001

from tests import faults

SCENARIOS = {
    "kill": (faults.kill_9, None),
    "redis": (faults.redis_restart, None),
    "postgres": (faults.postgres_stop, None),
    "dropped": (faults.dropped_messages, faults.DROPPING),
    "idle": (faults.idle_minute, None),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="runs of each fault (default %(default)s; idle runs once)")
    parser.add_argument("--faults", default=",".join(SCENARIOS), help="comma-separated subset of: %(default)s")
    args = parser.parse_args()
    if missing := faults.missing_programs():
        parser.error(f"this benchmark needs {' and '.join(missing)}")
    print(f"bokehsite fault benchmark; {machine()}")
    print(f"bokehsite at {revision()}")
    rows = []
    with faults.services() as services:
        for name in args.faults.split(","):
            scenario, extra = SCENARIOS[name]
            outcomes = []
            for _ in range(1 if name == "idle" else args.runs):
                with faults.cluster(*services, extra) as cluster:
                    outcomes.append(asyncio.run(scenario(cluster)))
                print(f"  {outcomes[-1].fault}: lost {outcomes[-1].lost}, repeated {outcomes[-1].repeated}, "
                      f"diverged {outcomes[-1].diverged}, recovered in {outcomes[-1].recover_s:.2f} s, "
                      f"{outcomes[-1].notes}", flush=True)
            rows.append(outcomes)
    print()
    print("| fault | runs | points | lost | repeated | viewers diverged | recovery s, median (max) | "
          "client reconnects | client errors |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for outcomes in rows:
        recover = [o.recover_s for o in outcomes]
        errors = sum((o.seen.errors for o in outcomes), Counter())
        print(f"| {outcomes[0].fault} | {len(outcomes)} | {sum(o.points for o in outcomes)} | "
              f"{sum(o.lost for o in outcomes)} | {sum(o.repeated for o in outcomes)} | "
              f"{sum(o.diverged for o in outcomes)} | {statistics.median(recover):.2f} ({max(recover):.2f}) | "
              f"{sum(o.seen.reconnects for o in outcomes)} | "
              f"{', '.join(f'{code} {n}' for code, n in errors.most_common()) or 'none'} |")


if __name__ == "__main__":
    main()
