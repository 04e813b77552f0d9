"""`make bench`: run every benchmark module in bench/ (each exposes `main()`), or the ones named.

Benchmarks measure a baseline side by side in the same run and report ratios; results go to
BENCHMARKS.md. They are never timed unit tests.
"""

import importlib
import pkgutil
import sys
from pathlib import Path


def main(names: list[str]) -> int:
    modules = pkgutil.iter_modules([str(Path(__file__).parent)])
    available = sorted(m.name for m in modules if not m.name.startswith("_"))
    selected = names or available
    unknown = sorted(set(selected) - set(available))
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; available: {', '.join(available) or 'none'}")
        return 2
    if not selected:
        print("no benchmarks defined yet")
        return 0
    for name in selected:
        print(f"== bench/{name}.py")
        importlib.import_module(f"bench.{name}").main()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
