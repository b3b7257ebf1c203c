#!/bin/bash
# SPDX-License-Identifier: MIT
# The bash completion of mplog and mpattach (tools/completion/mplog): it
# loads without the bash-completion package, and completes commands,
# options and their values.
set -u
comp=${1:?usage: check-completion.sh COMPLETION_FILE}
[ -r "$comp" ] || { echo "no $comp" >&2; exit 1; }
# shellcheck disable=SC1090
source "$comp" || exit 1
fail=0
expect() { # expect "WANT..." WORD...: complete the last word of WORD...
    local want=$1; shift
    COMP_WORDS=("$@")
    COMP_CWORD=$(($# - 1))
    COMPREPLY=()
    local fn
    fn=$(complete -p "$1" | sed 's/.*-F \([^ ]*\).*/\1/')
    "$fn" "$1" "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
    local got
    got=$(printf '%s\n' "${COMPREPLY[@]}" | sort | tr '\n' ' ')
    if [ "$got" != "$want" ]; then
        echo "FAIL: $* -> '$got', want '$want'" >&2
        fail=1
    fi
}
cd "$(mktemp -d)" || exit 1
touch run.jsonl
expect "short short-iso " mplog -o sh
expect "--since --stats --stream --strict " mplog --s
expect "cat " mplog ca
expect "run.jsonl " mplog tail ru
expect "warn " mplog -l wa
expect "--host " mplog --ho
expect "yesterday " mplog --since ye
expect "list " mpattach li
rm -f run.jsonl
rmdir "$PWD"
exit $fail
