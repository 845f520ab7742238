"""``python -m tests.zoo [NAME ...]``: build (or find in the cache) the zoo models and print where they are."""

from __future__ import annotations

import sys
import time

from tests.zoo import ZOO, build


def main(argv: list[str]) -> int:
    names = argv or list(ZOO)
    unknown = [n for n in names if n not in ZOO]
    if unknown:
        print(f"error: unknown zoo model {unknown[0]!r}; choose from {', '.join(ZOO)}", file=sys.stderr)
        return 2
    for name in names:
        t0 = time.perf_counter()
        p = build(name)
        print(f"{name:<24} {p.model.stat().st_size / 1e3:7.0f} KB  {time.perf_counter() - t0:5.1f} s  {p.model.parent}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
