"""`make bench`: every benchmark, each printing its ratios (measured side by side in one run)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCHES = ["bench_convert.py", "bench_pipeline.py"]


def main() -> int:
    here = Path(__file__).resolve().parent
    failed = []
    for name in BENCHES:
        print(f"== {name}", flush=True)
        if subprocess.run([sys.executable, str(here / name)], check=False).returncode != 0:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
