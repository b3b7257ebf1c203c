#!/bin/sh
# SPDX-License-Identifier: MIT
# Run one libFuzzer target as a meson test:
#   run-fuzzer.sh FUZZER SEED_DIR WORK_DIR [libFuzzer options...]
# for $MPKIT_FUZZ_TIME seconds (default 20) over WORK_DIR/corpus, a copy of
# the seeds (libFuzzer adds the inputs it finds to its first corpus
# directory: never the source tree). Crash, leak, timeout and UBSan inputs
# go to WORK_DIR/artifacts/; any of them fails the test (exit 1: libFuzzer's
# default, 77, would read as a skip).
set -eu
fuzzer=$1 seeds=$2 work=$3
shift 3
mkdir -p "$work/corpus" "$work/artifacts"
# -n: what earlier runs found is kept, so runs build on each other.
cp -n "$seeds"/* "$work/corpus/"
exec "$fuzzer" \
	-max_total_time="${MPKIT_FUZZ_TIME:-20}" \
	-timeout=10 -rss_limit_mb=2048 \
	-error_exitcode=1 -timeout_exitcode=1 \
	-print_final_stats=1 \
	-artifact_prefix="$work/artifacts/" \
	"$@" "$work/corpus"
