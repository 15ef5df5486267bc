#!/usr/bin/env bash
# Runs procgroups for CYCLES cycles over a population of processes that is
# replaced continuously, and prints its resident memory along the way, to
# show that it stays flat, and its CPU per cycle under that churn. See
# BENCHMARKS.md.
#
#   benches/churn.sh [-n PROCS] [-c CYCLES] [-t true|false] [-i INTERVAL]
#                    [-l MIN-MAX | -r EXITS_PER_SEC]
#
# PROCS procgroups-workload processes are kept alive (20 comms, 0-5 extra
# threads each). With -l, each lives MIN to MAX seconds (default 5-35),
# exited ones replaced every 0.2 s by a shell loop. With -r, a
# procgroups-workload supervisor (--churn) keeps them alive instead, each
# living 0.5 to 1.5 times PROCS / EXITS_PER_SEC and replaced as soon as it
# exits: EXITS_PER_SEC exits per second (1,000 and more; a shell loop
# cannot start processes that fast). procgroups runs with
# OTEL_METRICS_EXPORTER=none on its own timer; its cycles are counted from
# its debug log, and every CYCLES/10 cycles it prints VmRSS, VmHWM, the
# number of processes it tracks, its CPU per cycle (utime+stime) over those
# cycles and the rate of process creations on the host over the same time
# (from /proc/stat; the exit rate once the population is steady).
# Everything it starts is stopped on exit.

set -euo pipefail

PROCS=1000
CYCLES=1000
THREADS=true
INTERVAL=500ms
LIFE=5-35
RATE=""
while getopts "n:c:t:i:l:r:h" opt; do
    case "$opt" in
        n) PROCS=$OPTARG ;;
        c) CYCLES=$OPTARG ;;
        t) THREADS=$OPTARG ;;
        i) INTERVAL=$OPTARG ;;
        l) LIFE=$OPTARG ;;
        r) RATE=$OPTARG ;;
        *) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
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

NAMES=(nginx postgres redis-server java python3 node ruby php-fpm sshd cron
    rsyslogd containerd dockerd kubelet etcd haproxy memcached mysqld envoy grafana)
if [[ -n $RATE ]]; then
    # A supervisor starts processes far faster than a shell loop.
    say "starting the churning workload ($PROCS processes, $RATE exits per second)"
    ulimit -u unlimited 2>/dev/null || true
    setsid bash -c 'echo $$ >"$1"; shift; exec "$@"' churn "$WORK/session" \
        "$WORKLOAD" --churn "$PROCS" --exits-per-sec "$RATE" --thread-name worker \
        --churn-names "$(IFS=,; echo "${NAMES[*]}")" --churn-threads 0,0,1,2,4,5 \
        </dev/null >/dev/null 2>&1 &
    WARMUP=$(((PROCS + RATE - 1) / RATE * 2))
else
    # Keeps PROCS workloads alive: every 0.2 s, starts as many as have exited.
    say "starting the churning workload ($PROCS processes, each living $LIFE s)"
    setsid bash -c '
        echo $$ >"$3"
        W=$1; N=$2; MIN=$4; SPAN=$5; shift 5
        names=("$@")
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
        "${NAMES[@]}" </dev/null >/dev/null 2>&1 &
    WARMUP=${LIFE%-*}
fi
for ((s = 0; s < 100; s++)); do
    [[ -s $WORK/session ]] && break
    sleep 0.05
done
SESSION=$(cat "$WORK/session")
# Let the population fill up and the first generation start to exit.
sleep "$WARMUP"

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
cpu_ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$PG_PID/stat"; }
forks() { awk '$1 == "processes" { print $2 }' /proc/stat; }
TICK=$(getconf CLK_TCK)
echo
if [[ -n $RATE ]]; then
    echo "procgroups --threads=$THREADS --interval $INTERVAL, $PROCS workloads, $RATE exits/s asked, $CYCLES cycles"
else
    echo "procgroups --threads=$THREADS --interval $INTERVAL, $PROCS workloads living $LIFE s, $CYCLES cycles"
fi
echo
echo "| cycle | processes tracked | VmRSS | VmHWM | CPU/cycle | processes started/s |"
echo "|---|---|---|---|---|---|"
step=$((CYCLES / 10))
last_cycle=$(cycles) last_ticks=$(cpu_ticks) last_forks=$(forks) last_ns=$(date +%s%N)
for ((next = step; next <= CYCLES; next += step)); do
    while (($(cycles) < next)); do
        kill -0 "$PG_PID" 2>/dev/null || { say "procgroups exited:"; cat "$WORK/pg.log" >&2; exit 1; }
        sleep 0.2
    done
    now_cycle=$(cycles) now_ticks=$(cpu_ticks) now_forks=$(forks) now_ns=$(date +%s%N)
    tracked=$(grep 'cycle done' "$WORK/pg.log" | tail -1 | sed -n 's/.*tracked=\([0-9]*\).*/\1/p')
    printf '| %d | %s | %.1f MiB | %.1f MiB | %s | %s |\n' "$next" "$tracked" \
        "$(awk -v k="$(field VmRSS)" 'BEGIN { print k / 1024 }')" \
        "$(awk -v k="$(field VmHWM)" 'BEGIN { print k / 1024 }')" \
        "$(awk -v t=$((now_ticks - last_ticks)) -v n=$((now_cycle - last_cycle)) -v hz="$TICK" \
            'BEGIN { if (n > 0) printf "%.1f ms", t * 1000 / hz / n; else print "n/a" }')" \
        "$(awk -v f=$((now_forks - last_forks)) -v ns=$((now_ns - last_ns)) \
            'BEGIN { printf "%.0f", f / (ns / 1e9) }')"
    last_cycle=$now_cycle last_ticks=$now_ticks last_forks=$now_forks last_ns=$now_ns
done
