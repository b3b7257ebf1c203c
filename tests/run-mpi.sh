#!/bin/sh
# SPDX-License-Identifier: MIT
# Runs PROGRAM under `mpirun -np NP` on this machine; exit 77 (skip) with
# the reason where mpirun is absent.
set -eu
np=$1
shift
command -v mpirun >/dev/null 2>&1 || { echo "run-mpi: no mpirun (Debian: openmpi-bin)"; exit 77; }
exec mpirun --oversubscribe --allow-run-as-root -np "$np" "$@"
