"""Time loading the committed ATT&CK fallback index, cold, in fresh Python processes.

Each run starts a new interpreter, imports the knowledge base and times only the first
look-up, which reads and unpacks the index. Usage: .venv/bin/python bench/bench_attack_index.py
"""

from __future__ import annotations

import statistics
import subprocess
import sys

RUNS = 10
PROBE = """
import time
from socfeed.attack.knowledge import KnowledgeBase
knowledge_base = KnowledgeBase()
started = time.perf_counter()
knowledge_base.resolve("T1086")
print((time.perf_counter() - started) * 1000)
"""


def main() -> int:
    """Print the median and maximum load time in milliseconds over RUNS fresh processes."""
    times = [
        float(
            subprocess.run(
                [sys.executable, "-c", PROBE], check=True, capture_output=True, text=True
            ).stdout
        )
        for _ in range(RUNS)
    ]
    print(
        f"index load over {RUNS} fresh processes: median {statistics.median(times):.1f} ms, "
        f"max {max(times):.1f} ms"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
