#!/usr/bin/env bash
# Runs procgroups for CYCLES cycles over a population of processes that is
# replaced continuously, and prints its resident memory along the way, to
# show that it stays flat. See BENCHMARKS.md.
#
#   benches/churn.sh [-n PROCS] [-c CYCLES] [-t true|false] [-i INTERVAL]
#                    [-l MIN-MAX]
#
# PROCS procgroups-workload processes are kept alive (20 comms, 0-5 extra
# threads each), each living MIN to MAX seconds (default 5-35), exited ones
# replaced every 0.2 s. procgroups runs with OTEL_METRICS_EXPORTER=none
# on its own timer; its cycles are counted from its debug log, and VmRSS,
# VmHWM and the number of processes it tracks are printed every CYCLES/10
# cycles. Everything it starts is stopped on exit.

set -euo pipefail

PROCS=1000
CYCLES=1000
THREADS=true
INTERVAL=500ms
LIFE=5-35
while getopts "n:c:t:i:l:h" opt; do
    case "$opt" in
        n) PROCS=$OPTARG ;;
        c) CYCLES=$OPTARG ;;
        t) THREADS=$OPTARG ;;
        i) INTERVAL=$OPTARG ;;
        l) LIFE=$OPTARG ;;
        *) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
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
# Room for PIDs to cycle through (as root; otherwise the host's settings).
TASKS=$((PROCS * 8 + 20000))
if (($(cat /proc/sys/kernel/pid_max) < TASKS)) && [[ -w /proc/sys/kernel/pid_max ]]; then
    echo "$TASKS" >/proc/sys/kernel/pid_max
fi

# Keeps PROCS workloads alive: every 0.2 s, starts as many as have exited.
say "starting the churning workload ($PROCS processes, each living $LIFE s)"
setsid bash -c '
    echo $$ >"$3"
    W=$1; N=$2; MIN=$4; SPAN=$5
    names=(nginx postgres redis-server java python3 node ruby php-fpm sshd cron
        rsyslogd containerd dockerd kubelet etcd haproxy memcached mysqld envoy grafana)
    extra=(0 0 1 2 4 5)
    i=0
    while :; do
        alive=$(jobs -rp | wc -l)
        for ((k = alive; k < N; k++, i++)); do
            name=${names[i % 20]}
            "$W" --name "$name" --threads "${extra[i % 6]}" --thread-name "w${name:0:6}" \
                --files $((i % 7)) --ignore-stdin --lifetime-secs $((MIN + RANDOM % SPAN)) \
                </dev/null >/dev/null 2>&1 &
        done
        sleep 0.2
    done
' churn "$WORKLOAD" "$PROCS" "$WORK/session" "${LIFE%-*}" $((${LIFE#*-} - ${LIFE%-*} + 1)) \
    </dev/null >/dev/null 2>&1 &
for ((s = 0; s < 100; s++)); do
    [[ -s $WORK/session ]] && break
    sleep 0.05
done
SESSION=$(cat "$WORK/session")
# Let the population fill up and the first generation start to exit.
sleep "${LIFE%-*}"

OTEL_METRICS_EXPORTER=none RUST_LOG=procgroups::agent=debug \
    "$PG" --threads="$THREADS" --interval "$INTERVAL" \
    --status-socket "$WORK/status.sock" 2>"$WORK/pg.log" &
PG_PID=$!

# Cycles logged so far; 0 until the agent's shell has created the log.
cycles() {
    [[ -f $WORK/pg.log ]] || { echo 0; return; }
    grep -c 'cycle done' "$WORK/pg.log" || true
}
field() { awk -v k="$1:" '$1 == k { print $2 }' "/proc/$PG_PID/status"; }
echo
echo "procgroups --threads=$THREADS --interval $INTERVAL, $PROCS workloads living $LIFE s, $CYCLES cycles"
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
