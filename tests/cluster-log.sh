#!/bin/sh
# SPDX-License-Identifier: MIT
# The agents' log records in rank 0's log (test-cluster-log under
# `mpirun -np 3`, tests/run-mpi.sh). "json": every record of every rank
# once in rank 0's JSON lines file, with its host and rank (and, from an
# agent, its task's index in the whole call), the last record of the task
# that crashed on its rank kept (rank 0 only drives), 24 MiB of records of
# one map (6 MiB a chunk, over the 4 MiB an agent queues) none lost, the
# lines printed without newline (records only at the agents' end) kept, and
# mplog(1) filtering the file by host and rank. "stderr": with the pools' default logs, each record written
# once (by rank 0; an agent writing its own would double it).
set -eu
run_mpi=$1 prog=$2 mplog=$3 schema=$4
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
host=$(hostname)
status=0
"$run_mpi" 3 "$prog" json "$dir/log.json" >"$dir/out" 2>&1 || status=$?
cat "$dir/out"
[ "$status" -ne 77 ] || exit 77
[ "$status" -eq 0 ] || { echo "cluster-log: the json run ended with status $status"; exit 1; }
python3 - "$dir/log.json" "$schema" "$host" <<'PY'
import collections, json, re, sys
path, schema_path, host = sys.argv[1:4]
recs = [json.loads(l) for l in open(path, encoding='utf-8')]
N = 60
flood = collections.Counter()
for r in recs:
    if r['body'].startswith('flood '):
        _, task, i = r['body'].split()
        flood[(int(task), int(i))] += 1
        assert len(r['attributes']['pad']) == 1023 and r['resource']['mpkit.mpi.rank'] > 0, r
assert len(flood) == 4 * 6000 and set(flood.values()) == {1}, 'flood: %d records' % len(flood)
assert not [r for r in recs if 'lost' in r['body']], 'records lost'
# Each flood task's last line, without newline: logged when the agents
# stopped, so it came in their LAST messages.
tails = collections.Counter(int(t) for r in recs for t in re.findall(r'tail of flood (\d+)', r['body']))
assert tails == {0: 1, 1: 1, 2: 1, 3: 1}, 'last lines: %s' % tails
# The schema (slow: every record but a few of the flood).
some = [r for r in recs if r['body'].startswith('flood ')][:20]
recs = [r for r in recs if not r['body'].startswith('flood ')]
try:
    import jsonschema
    schema = json.load(open(schema_path))
    for r in recs + some:
        jsonschema.validate(r, schema, cls=jsonschema.Draft202012Validator)
except ImportError:
    print('cluster-log: python3-jsonschema missing, schema not checked')
logged, printed, ranks, pids = collections.Counter(), collections.Counter(), set(), {}
for r in recs:
    a, res, body = r['attributes'], r['resource'], r['body']
    assert res['host.name'] == host, r
    rank = res['mpkit.mpi.rank']
    pids.setdefault(rank, set()).add(res['process.pid'])
    if body.startswith('task for input '):
        i = int(body.split()[-1])
        logged[i] += 1
        assert rank == int(a['ran_on']) and a['input'] == str(i), r
        assert a['code.function.name'] == 'log_task' and a['code.line.number'] > 0, r
        assert a['mpkit.worker'] == 0 and a['process.pid'] > 0 and r['severityText'] == 'INFO', r
        assert a['mpkit.task'] == i, r  # in the whole call, not the chunk
        ranks.add(rank)
    elif body.startswith('printed for input '):
        i = int(body.split()[-1])
        printed[i] += 1
        assert a['log.iostream'] == 'stdout' and r['severityText'] == 'INFO', r
        assert a['mpkit.task'] == i, r
missing = [i for i in range(N) if logged[i] != 1 or printed[i] != 1]
assert not missing and len(logged) == N and len(printed) == N, missing
assert ranks == {1, 2}, ranks  # rank 0 only drives
assert all(len(p) == 1 for p in pids.values()) and len(set().union(*pids.values())) == 2, pids
last = [r for r in recs if r['body'] == 'input 42 about to crash']
assert len(last) == 1, last
crank = last[0]['resource']['mpkit.mpi.rank']
fail = [r for r in recs if r['attributes'].get('mpg.kind') == 'signaled']
assert len(fail) == 1 and fail[0]['attributes']['exception.type'] == 'SEGV', fail
assert fail[0]['resource']['mpkit.mpi.rank'] == crank, fail
assert fail[0]['attributes']['mpkit.task'] == 42 and last[0]['attributes']['mpkit.task'] == 42, fail
print('cluster-log: %d records, every task once, from ranks %s; task 42 crashed on rank %d'
      % (len(recs), sorted(ranks), crank))
PY
grep -v '"body":"flood ' "$dir/log.json" >"$dir/small.json"
mv "$dir/small.json" "$dir/log.json"
total=$(wc -l <"$dir/log.json")
n=$("$mplog" --host "$host" -o json "$dir/log.json" | wc -l)
[ "$n" -eq "$total" ] || { echo "cluster-log: mplog --host $host: $n records of $total"; exit 1; }
n=$("$mplog" --host no-such-host -o json "$dir/log.json" | wc -l)
[ "$n" -eq 0 ] || { echo "cluster-log: mplog --host no-such-host: $n records"; exit 1; }
for rank in 1 2; do
	want=$(grep -c "\"mpkit.mpi.rank\":$rank}" "$dir/log.json" || true)
	n=$("$mplog" --host "$host" --rank "$rank" -o json "$dir/log.json" | wc -l)
	if [ "$n" -ne "$want" ] || [ "$n" -eq 0 ]; then
		echo "cluster-log: mplog --rank $rank: $n records, want $want"
		exit 1
	fi
done
echo "cluster-log: mplog --host and --rank select the ranks' records"

status=0
"$run_mpi" 3 "$prog" stderr >"$dir/out" 2>&1 || status=$?
[ "$status" -eq 0 ] || { cat "$dir/out"; echo "cluster-log: the stderr run ended with status $status"; exit 1; }
python3 - "$dir/out" "$host" <<'PY'
import collections, re, sys
text = open(sys.argv[1], encoding='utf-8', errors='replace').read()
seen = collections.Counter(int(m) for m in re.findall(r'\] task for input (\d+) ', text))
bad = {i: seen[i] for i in range(60) if seen[i] != 1}
assert not bad, 'records not written once: %s' % bad
# An agent's records carry its host and rank, rank 0's its rank.
assert re.search(r'\[%s r[12] w0 pid \d+ task \d+\] task for input' % re.escape(sys.argv[2]), text), text
assert re.search(r'\[r0 w0 pid \d+ task \d+\] task for input', text), text
print('cluster-log: stderr has every record once')
PY
