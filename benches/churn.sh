#!/usr/bin/env bash
# Runs procgroups for CYCLES cycles over a population of processes that is
# replaced continuously, and prints its resident memory along the way, to
# show that it stays flat. See BENCHMARKS.md.
#
#   benches/churn.sh [-n PROCS] [-c CYCLES] [-t true|false] [-i INTERVAL]
#
# About PROCS procgroups-workload processes are alive at any time (20
# comms, 0-5 extra threads each), each living 5 to 35 s, so about PROCS/20
# are replaced every second. procgroups runs with OTEL_METRICS_EXPORTER=none
# on its own timer; its cycles are counted from its debug log, and VmRSS,
# VmHWM and the number of processes it tracks are printed every CYCLES/10
# cycles. Everything it starts is stopped on exit.

set -euo pipefail

PROCS=1000
CYCLES=1000
THREADS=true
INTERVAL=500ms
while getopts "n:c:t:i:h" opt; do
    case "$opt" in
        n) PROCS=$OPTARG ;;
        c) CYCLES=$OPTARG ;;
        t) THREADS=$OPTARG ;;
        i) INTERVAL=$OPTARG ;;
        *) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
    esac
done

ROOT=$(cd "$(dirname "$0")/.." && pwd)
PG=$ROOT/target/release/procgroups
WORKLOAD=$ROOT/target/release/procgroups-workload
WORK=$(mktemp -d /tmp/procgroups-churn.XXXXXX)
SESSION=""
PG_PID=""

cleanup() {
    [[ -n $PG_PID ]] && kill "$PG_PID" 2>/dev/null && wait "$PG_PID" 2>/dev/null
    [[ -n $SESSION ]] && kill -KILL -- "-$SESSION" 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { echo "churn.sh: $*" >&2; }

if [[ ! -x $PG || ! -x $WORKLOAD ]]; then
    say "building release binaries"
    (cd "$ROOT" && cargo build --release --bins)
fi
ulimit -n "$(ulimit -Hn)"

# Spawns a replacement every 1/rate seconds: PROCS alive on average, each
# living 20 s on average.
say "starting the churning workload (about $PROCS processes)"
setsid bash -c '
    echo $$ >"$3"
    W=$1; N=$2
    names=(nginx postgres redis-server java python3 node ruby php-fpm sshd cron
        rsyslogd containerd dockerd kubelet etcd haproxy memcached mysqld envoy grafana)
    extra=(0 0 1 2 4 5)
    pause=$(awk -v n="$N" "BEGIN { printf \"%.4f\", 20 / n }")
    for ((i = 0; ; i++)); do
        name=${names[i % 20]}
        "$W" --name "$name" --threads "${extra[i % 6]}" --thread-name "w${name:0:6}" \
            --files $((i % 7)) --ignore-stdin --lifetime-secs $((5 + RANDOM % 31)) \
            </dev/null >/dev/null 2>&1 &
        sleep "$pause"
    done
' churn "$WORKLOAD" "$PROCS" "$WORK/session" </dev/null >/dev/null 2>&1 &
for ((s = 0; s < 100; s++)); do
    [[ -s $WORK/session ]] && break
    sleep 0.05
done
SESSION=$(cat "$WORK/session")
# Let the population fill up (average lifetime 20 s).
sleep 25

OTEL_METRICS_EXPORTER=none RUST_LOG=procgroups::agent=debug \
    "$PG" --threads="$THREADS" --interval "$INTERVAL" \
    --status-socket "$WORK/status.sock" 2>"$WORK/pg.log" &
PG_PID=$!

cycles() { grep -c 'cycle done' "$WORK/pg.log" || true; }
field() { awk -v k="$1:" '$1 == k { print $2 }' "/proc/$PG_PID/status"; }
echo
echo "procgroups --threads=$THREADS --interval $INTERVAL, about $PROCS processes alive, $CYCLES cycles"
echo
echo "| cycle | processes tracked | VmRSS | VmHWM |"
echo "|---|---|---|---|"
step=$((CYCLES / 10))
for ((next = step; next <= CYCLES; next += step)); do
    while (($(cycles) < next)); do
        kill -0 "$PG_PID" 2>/dev/null || { say "procgroups exited:"; cat "$WORK/pg.log" >&2; exit 1; }
        sleep 0.2
    done
    tracked=$(grep 'cycle done' "$WORK/pg.log" | tail -1 | sed -n 's/.*tracked=\([0-9]*\).*/\1/p')
    printf '| %d | %s | %.1f MiB | %.1f MiB |\n' "$next" "$tracked" \
        "$(awk -v k="$(field VmRSS)" 'BEGIN { print k / 1024 }')" \
        "$(awk -v k="$(field VmHWM)" 'BEGIN { print k / 1024 }')"
done
