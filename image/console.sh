# Serial-console helpers shared by the qemu image tests (sourced, not run).
# The caller defines `fail`, sets $W (work folder with console.log) and $qpid (qemu's pid),
# and opens fd 3 on the console's input FIFO.

mark=0
console_size() { stat -c %s "$W/console.log"; }
# new_output: the console output since the last mark.
new_output() { tail -c +$((mark + 1)) "$W/console.log" | tr -d '\r'; }
wait_for() { # wait_for EXTENDED-REGEX SECONDS
    local deadline=$((SECONDS + $2))
    # Not a pipe: with pipefail, grep -q leaving early would fail the pipeline (SIGPIPE).
    until grep -Eq -- "$1" < <(new_output); do
        kill -0 "$qpid" 2>/dev/null || fail "qemu exited while waiting for /$1/"
        [ $SECONDS -lt $deadline ] || fail "no /$1/ on the console within $2 s"
        sleep 0.2
    done
}
send() { printf '%s\n' "$1" >&3; }
# run CMD [SECONDS]: runs CMD in the console's shell; its output (and rc) land in $out / $rc.
run() {
    mark=$(console_size)
    send "$1; echo \"@@rc=\$?@@\""
    wait_for '@@rc=[0-9]+@@' "${2:-60}"
    out=$(new_output)
    rc=$(echo "$out" | sed -n 's/.*@@rc=\([0-9]*\)@@.*/\1/p' | tail -1)
}
expect_out() { # expect_out EXTENDED-REGEX WHAT
    grep -Eq -- "$1" <<<"$out" || fail "$2: no /$1/ in: $out"
}
