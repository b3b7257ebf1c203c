#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Baseline (3) of bench_log: Python's logging cookbook recipe for logging
to one file from many processes -- a QueueHandler in each child, a
QueueListener with a FileHandler in the parent (multiprocessing, fork).
Standard library only.

usage: py_log_queue.py N M OUTFILE
Prints the wall time in seconds from releasing the children to the
listener having written everything (children joined, listener stopped)."""
import logging
import logging.handlers
import multiprocessing as mp
import sys
import time

FILLER = ("lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do "
          "eiusmod tempor incididunt ut lab")


def worker(queue, k, m, go):
    root = logging.getLogger()
    root.handlers[:] = [logging.handlers.QueueHandler(queue)]
    root.setLevel(logging.INFO)
    go.wait()
    for i in range(m):
        logging.info("worker %2d record %8d: %s", k, i, FILLER)


def main():
    n, m, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    ctx = mp.get_context("fork")
    queue = ctx.Queue(-1)
    go = ctx.Event()
    handler = logging.FileHandler(out, mode="w")
    handler.setFormatter(logging.Formatter(
        "%(asctime)s %(processName)-10s %(levelname)-8s %(message)s"))
    procs = [ctx.Process(target=worker, args=(queue, k, m, go)) for k in range(n)]
    for p in procs:
        p.start()
    listener = logging.handlers.QueueListener(queue, handler)
    listener.start()
    t0 = time.perf_counter()
    go.set()
    failed = 0
    for p in procs:
        p.join()
        failed += p.exitcode != 0
    listener.stop()
    handler.close()
    print(f"{time.perf_counter() - t0:.6f}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
