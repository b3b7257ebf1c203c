#!/bin/sh
# SPDX-License-Identifier: MIT
# test-cluster-dead under `mpirun -np 3` (tests/run-mpi.sh): with "kill",
# a task SIGKILLs its own agent; Open MPI 4.1 (Debian) then ends the whole
# job, rank 0 too: the run must end (meson's timeout bounds it) with a
# non-zero status and mpirun's message naming the dead rank and its host,
# and where rank 0 saw the death first, its map must have reported task 7
# as lost on that rank. With
# "recover", the same under orte_enable_recovery, where the job goes on:
# rank 0 reports the tasks the dead rank held (the program checks them).
# With "rank0", under recovery too, rank 0 SIGKILLs itself: both agents
# must notice and return from mpg_cluster_init() (-ECONNRESET).
# With "silent", as "recover" but with the watch by pidfd off
# (MPKIT_CLUSTER_PIDFD=0), as for a rank on another host: rank 0 declares
# the killed rank dead once it is silent past the deadline
# (MPKIT_CLUSTER_DEADLINE_MS=500).
# With "rank0-silent", as "rank0" with the pidfd watch off: the agents
# take rank 0's silence past the deadline for its death (rank 0 beats too).
# With "idle", the ranks' CPU time while waiting (the program checks it).
# With "abort-exit", a map under MPG_ABORT with abort_exit 3 whose task 7
# fails on an agent: rank 0 prints the error and exits 3, and so does the
# job (mpirun), at once.
set -eu
run_mpi=$1 prog=$2 mode=$3
out=$(mktemp)
trap 'rm -f "$out"' EXIT
status=0
mca=
case $mode in recover | rank0 | silent | rank0-silent) mca="--mca orte_enable_recovery 1" ;; esac
case $mode in silent | rank0-silent) export MPKIT_CLUSTER_PIDFD=0 MPKIT_CLUSTER_DEADLINE_MS=500 ;; esac
# shellcheck disable=SC2086 # $mca: two words or none
"$run_mpi" 3 $mca "$prog" "$mode" >"$out" 2>&1 || status=$?
cat "$out"
[ "$status" -ne 77 ] || exit 77
if [ "$mode" = rank0 ] || [ "$mode" = rank0-silent ]; then
	n=$(grep -c "saw rank 0 die" "$out" || true)
	[ "$n" -eq 2 ] || { echo "cluster-dead: $n agents of 2 saw rank 0 die"; exit 1; }
	exit 0
fi
if [ "$mode" = abort-exit ]; then
	[ "$status" -eq 3 ] || { echo "cluster-dead: the job ended with status $status, not 3"; exit 1; }
	grep -q "^mpguard: pool aborted: task 7 raised error 33 on worker .* of rank [12] (host $(hostname)): task 7 fails" "$out" ||
		{ echo "cluster-dead: rank 0 did not print the abort's error"; exit 1; }
	exit 0
fi
if [ "$mode" != kill ]; then
	exit "$status"
fi
killed=$(sed -n 's/^test-cluster-dead: task 7 kills rank \([0-9]*\) .*/\1/p' "$out")
[ -n "$killed" ] || { echo "cluster-dead: no task killed its agent"; exit 1; }
[ "$status" -ne 0 ] || { echo "cluster-dead: the job ended with status 0"; exit 1; }
grep -q "process rank $killed with PID .* on node $(hostname) exited on signal 9" "$out" ||
	{ echo "cluster-dead: no message names rank $killed on $(hostname)"; exit 1; }
if grep -q "map returned" "$out" &&
	! grep -q "rank 0 got: task 7 cancelled on no worker of rank $killed (host $(hostname)): the rank died" "$out"; then
	echo "cluster-dead: rank 0's map returned without reporting task 7 on rank $killed"
	exit 1
fi
echo "cluster-dead: ok, rank $killed's death ended the job (status $status)"
