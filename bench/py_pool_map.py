#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Python baseline for bench_map: time multiprocessing.Pool.map of x+2.

Runs Pool(N).map(add2, range(count)) with the 'fork' start method, checks
the results and prints the wall seconds of the map call alone (the pool is
started before the clock starts, as on the C side), as 'seconds=S'.
Standard library only.
"""
import argparse
import multiprocessing
import sys
import time


def add2(x):
    # Top level, so the forked workers can find it by name when unpickling.
    return x + 2


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--workers", type=int, required=True)
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--chunksize", type=int, default=0,
                    help="0: Pool.map's own default chunksize")
    args = ap.parse_args()
    if args.workers < 1 or args.count < 0 or args.chunksize < 0:
        ap.error("--workers must be >= 1, --count and --chunksize >= 0")

    # Explicit 'fork': the default differs across Python versions and platforms.
    ctx = multiprocessing.get_context("fork")
    kwargs = {"chunksize": args.chunksize} if args.chunksize > 0 else {}
    with ctx.Pool(args.workers) as pool:
        # Warm up: make sure every worker has started before timing.
        pool.map(add2, range(args.workers), chunksize=1)
        t0 = time.perf_counter()
        out = pool.map(add2, range(args.count), **kwargs)
        elapsed = time.perf_counter() - t0

    n = args.count
    want = n * (n - 1) // 2 + 2 * n
    if len(out) != n or sum(out) != want or (n and (out[0] != 2 or out[-1] != n + 1)):
        print(f"py_pool_map: wrong results (len {len(out)}, sum {sum(out)}, want {want})",
              file=sys.stderr)
        return 1
    print(f"seconds={elapsed:.6f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
