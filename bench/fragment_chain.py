"""Figure: time to refuse a 20-level doubling fragment chain (under 1 KB, a million fields
once expanded) against the time to answer `{ __typename }`, the same-run baseline.

Issue 7: such a document must be refused in milliseconds, before execution. Runs the
schema in-process (no HTTP), a fresh document text each time so no cache helps.
Prints the median (min-max) of several runs of many calls each, the ratio, and the load.

    python bench/fragment_chain.py [--runs 3] [--calls 50]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from api.schema import schema


def chain(levels: int, salt: int) -> str:
    fragments = [f"fragment F{i} on Query {{ ...F{i + 1} ...F{i + 1} }}" for i in range(levels)]
    fragments.append(f"fragment F{levels} on Query {{ __typename }}")
    return f"query Q{salt} {{ ...F0 }} " + " ".join(fragments)


async def per_call_ms(make: object, calls: int) -> float:
    started = time.perf_counter()
    for i in range(calls):
        result = await schema.execute(make(i))  # type: ignore[operator]
        assert result is not None
    return (time.perf_counter() - started) * 1000 / calls


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--calls", type=int, default=50)
    args = parser.parse_args()
    document = chain(20, 0)
    refused = await schema.execute(document)
    assert refused.errors, "the chain must be refused"
    print(f"document: {len(document.encode())} bytes; refused with: {refused.errors[0].message[:80]}")
    chain_ms, base_ms = [], []
    for run in range(args.runs):
        chain_ms.append(await per_call_ms(lambda i, r=run: chain(20, r * 10_000 + i), args.calls))
        base_ms.append(await per_call_ms(lambda i, r=run: f"query B{r * 10_000 + i} {{ __typename }}", args.calls))

    def show(values: list[float]) -> str:
        return f"{statistics.median(values):.2f} ms ({min(values):.2f}-{max(values):.2f})"

    print(f"refuse the 20-level chain: {show(chain_ms)} per document")
    print(f"answer {{ __typename }}:    {show(base_ms)} per document")
    print(f"ratio (median): {statistics.median(chain_ms) / statistics.median(base_ms):.1f}x; "
          f"load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    asyncio.run(main())
