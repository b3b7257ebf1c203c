#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Python baseline for bench_submit: apply_async of x+2, fire and forget.

Submits COUNT tasks with Pool.apply_async (a callback counts results) on a
'fork' pool of WORKERS already started, waits for the last, and prints the
wall seconds from the first submit to the last result as 'seconds=S'.
Standard library only.
"""
import argparse
import multiprocessing
import threading
import time


def add2(x):
    return x + 2


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--workers", type=int, required=True)
    ap.add_argument("--count", type=int, required=True)
    args = ap.parse_args()
    ctx = multiprocessing.get_context("fork")
    done = threading.Event()
    left = [args.count]

    def got(_):
        left[0] -= 1  # the pool's result thread: one at a time
        if left[0] == 0:
            done.set()

    with ctx.Pool(args.workers) as pool:
        pool.map(add2, range(args.workers), chunksize=1)  # workers up
        t0 = time.perf_counter()
        for i in range(args.count):
            pool.apply_async(add2, (i,), callback=got)
        done.wait()
        elapsed = time.perf_counter() - t0
    print(f"seconds={elapsed:.6f}")


if __name__ == "__main__":
    main()
