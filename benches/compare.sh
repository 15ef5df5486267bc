#!/usr/bin/env bash
# Compares the cost of one collection cycle of procgroups and of Debian's
# prometheus-process-exporter on the same machine, the same workload and
# the same grouping (every process with a command line, by comm: the
# packaged all.yaml), threads on and off. See BENCHMARKS.md.
#
#   benches/compare.sh [-n PROCS] [-c CYCLES] [-t on|off|both] [-i INTERVAL]
#
# It starts PROCS copies of target/release/procgroups-workload (20 comms,
# 0-5 extra threads each, 3 tasks per process on average, 0-6 extra open
# files) in a session of their own, then for each thread mode runs:
#   - process-exporter as a server on 127.0.0.1:<free port>, scraped with
#     curl once per cycle (it collects on every scrape);
#   - procgroups with OTEL_METRICS_EXPORTER=none on its own timer, its
#     cycles counted exactly from its debug log ("cycle done").
# For each it prints the CPU time per cycle (utime+stime of the process from
# /proc/PID/stat, over CYCLES cycles after a warm-up cycle) and the peak
# resident memory (VmHWM), and the ratio procgroups / process-exporter.
# When a C compiler is present it also runs benches/cloop.c, the reference
# loop that opens and reads stat, status and io and lists fd/ of every
# process (with threads on, also every task's stat and status), for the
# same number of cycles. Everything it starts is stopped on exit.
#
# Needs root (it raises pid_max and limits for large PROCS and installs
# prometheus-process-exporter with apt-get when missing) and a release
# build (cargo build --release), which it runs when the binaries are absent.

set -euo pipefail

PROCS=1000
CYCLES=40
MODES=both
INTERVAL=500ms
while getopts "n:c:t:i:h" opt; do
    case "$opt" in
        n) PROCS=$OPTARG ;;
        c) CYCLES=$OPTARG ;;
        t) MODES=$OPTARG ;;
        i) INTERVAL=$OPTARG ;;
        *) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
    esac
done
case "$MODES" in
    both) MODES="off on" ;;
    on | off) ;;
    *) echo "compare.sh: -t takes on, off or both" >&2; exit 2 ;;
esac
if ((CYCLES < 20)); then
    echo "compare.sh: at least 20 cycles" >&2
    exit 2
fi

ROOT=$(cd "$(dirname "$0")/.." && pwd)
PG=$ROOT/target/release/procgroups
WORKLOAD=$ROOT/target/release/procgroups-workload
PE=${PROCESS_EXPORTER:-$(command -v prometheus-process-exporter || true)}
TICK=$(getconf CLK_TCK)
WORK=$(mktemp -d /tmp/procgroups-compare.XXXXXX)
SESSION=""
PIDS=()

cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    if [[ -n $SESSION ]]; then
        kill -KILL -- "-$SESSION" 2>/dev/null || true
    fi
    for pid in "${PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { echo "compare.sh: $*" >&2; }

if [[ $(id -u) != 0 ]]; then
    say "run as root (limits, apt-get)"
    exit 2
fi
if [[ ! -x $PG || ! -x $WORKLOAD ]]; then
    say "building release binaries"
    (cd "$ROOT" && cargo build --release --bins)
fi
if [[ -z $PE ]]; then
    say "installing prometheus-process-exporter"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q prometheus-process-exporter >&2 ||
        { apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q prometheus-process-exporter >&2; }
    # The package starts its own service where there is an init system.
    if command -v systemctl >/dev/null && systemctl is-active -q prometheus-process-exporter 2>/dev/null; then
        systemctl stop prometheus-process-exporter
    fi
    PE=$(command -v prometheus-process-exporter)
fi

# Room for the workload: PIDs for every task, open files, processes.
TASKS=$((PROCS * 4 + 20000))
if (($(cat /proc/sys/kernel/pid_max) < TASKS)); then
    say "raising kernel.pid_max to $TASKS"
    echo "$TASKS" >/proc/sys/kernel/pid_max
fi
if (($(cat /proc/sys/kernel/threads-max) < TASKS)); then
    echo "$TASKS" >/proc/sys/kernel/threads-max
fi
ulimit -u unlimited 2>/dev/null || ulimit -u "$TASKS" 2>/dev/null || true
ulimit -n "$(ulimit -Hn)"

CLOOP=""
if command -v cc >/dev/null && cc -O2 -o "$WORK/cloop" "$ROOT/benches/cloop.c" 2>/dev/null; then
    CLOOP=$WORK/cloop
fi

# The packaged all.yaml: every process with a non-empty command line, by comm.
cat >"$WORK/all.yaml" <<'EOF'
process_names:
  - name: "{{.Comm}}"
    cmdline:
      - .+
EOF

NAMES=(nginx postgres redis-server java python3 node ruby php-fpm sshd cron
    rsyslogd containerd dockerd kubelet etcd haproxy memcached mysqld envoy grafana)
EXTRA=(0 0 1 2 4 5)

say "starting $PROCS workload processes"
: >"$WORK/ready"
setsid bash -c '
    echo $$ >"$4"
    W=$1; N=$2; READY=$3; shift 4
    names=("${@:1:20}"); extra=("${@:21:6}")
    for ((i = 0; i < N; i++)); do
        name=${names[i % 20]}
        "$W" --name "$name" --threads "${extra[i % 6]}" --thread-name "w${name:0:6}" \
            --files $((i % 7)) --ignore-stdin --lifetime-secs 7200 </dev/null >>"$READY" 2>/dev/null &
    done
    wait
' workload "$WORKLOAD" "$PROCS" "$WORK/ready" "$WORK/session" "${NAMES[@]}" "${EXTRA[@]}" \
    </dev/null >/dev/null 2>&1 &
PIDS+=($!)
for ((s = 0; s < 100; s++)); do
    [[ -s $WORK/session ]] && break
    sleep 0.05
done
SESSION=$(cat "$WORK/session")
for ((s = 0; s < 600; s++)); do
    (($(wc -l <"$WORK/ready") >= PROCS)) && break
    sleep 0.5
done
if (($(wc -l <"$WORK/ready") < PROCS)); then
    say "only $(wc -l <"$WORK/ready") of $PROCS workload processes started"
    exit 1
fi
sleep 2
ALL_PROCS=$(find /proc -maxdepth 1 -name '[0-9]*' | wc -l)
ALL_TASKS=$(find /proc/[0-9]*/task -maxdepth 1 -name '[0-9]*' 2>/dev/null | wc -l)
say "workload ready: $ALL_PROCS processes, $ALL_TASKS tasks on the host"

# utime+stime of a process, in clock ticks (threads that exited included).
cpu_ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"; }
peak_kib() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status"; }
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' 2>/dev/null ||
        echo $((20000 + RANDOM % 20000))
}
ms_per_cycle() { awk -v t="$1" -v n="$2" -v hz="$TICK" 'BEGIN { printf "%.1f", t * 1000 / hz / n }'; }
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

# process-exporter: collects on every scrape. Sets PE_TICKS and PE_KIB.
run_pe() {
    local threads=$1 port pid url t0 t1 i
    port=$(free_port)
    url=http://127.0.0.1:$port/metrics
    "$PE" -config.path "$WORK/all.yaml" -threads="$threads" -gather-smaps=false \
        -web.listen-address "127.0.0.1:$port" >"$WORK/pe.log" 2>&1 &
    pid=$!
    PIDS+=("$pid")
    for ((i = 0; i < 600; i++)); do
        curl -sf -o /dev/null "$url" && break
        kill -0 "$pid" 2>/dev/null || { say "process-exporter exited:"; cat "$WORK/pe.log" >&2; exit 1; }
        sleep 0.2
    done
    curl -sf -o /dev/null "$url" # warm-up cycle
    t0=$(cpu_ticks "$pid")
    for ((i = 0; i < CYCLES; i++)); do
        curl -sf -o /dev/null "$url"
    done
    t1=$(cpu_ticks "$pid")
    PE_TICKS=$((t1 - t0))
    PE_KIB=$(peak_kib "$pid")
    kill "$pid"
    wait "$pid" 2>/dev/null || true
}

# Cycles logged so far; 0 until the agent's shell has created the log (it
# is redirected in the background child, which may not have run yet).
pg_cycles() {
    [[ -f $WORK/pg.log ]] || { echo 0; return; }
    grep -c 'cycle done' "$WORK/pg.log" || true
}

# procgroups: its own timer, no exporter; cycles counted exactly from its
# log. Sets PG_TICKS, PG_KIB and PG_CYCLES.
run_pg() {
    local threads=$1 pid log t0 t1 c0 c1 cycles
    log=$WORK/pg.log
    OTEL_METRICS_EXPORTER=none RUST_LOG=procgroups::agent=debug \
        "$PG" --config "$WORK/all.yaml" --threads="$threads" --gather-smaps=false \
        --interval "$INTERVAL" --status-socket "$WORK/status.sock" 2>"$log" &
    pid=$!
    PIDS+=("$pid")
    # Wait for the first (warm-up) cycle, then take the start reading just
    # after a cycle has ended (the next starts an interval later).
    while (($(pg_cycles) < 2)); do
        kill -0 "$pid" 2>/dev/null || { say "procgroups exited:"; cat "$log" >&2; exit 1; }
        sleep 0.05
    done
    c0=$(pg_cycles)
    t0=$(cpu_ticks "$pid")
    while (($(pg_cycles) < c0 + CYCLES)); do
        sleep 0.05
    done
    t1=$(cpu_ticks "$pid")
    c1=$(pg_cycles)
    PG_TICKS=$((t1 - t0))
    PG_KIB=$(peak_kib "$pid")
    PG_CYCLES=$((c1 - c0))
    kill "$pid"
    wait "$pid" 2>/dev/null || true
}

echo
echo "N=$PROCS ($ALL_PROCS processes, $ALL_TASKS tasks on the host), $CYCLES cycles each, $(nproc) CPUs, $(uname -r)"
echo "process-exporter: $("$PE" -version 2>&1 | head -1)"
echo "procgroups: $("$PG" --version)"
echo
echo "| N | threads | process-exporter CPU/cycle | process-exporter peak RSS | procgroups CPU/cycle | procgroups peak RSS | ratio | C loop CPU/cycle |"
echo "|---|---|---|---|---|---|---|---|"
for mode in $MODES; do
    threads=$([[ $mode == on ]] && echo true || echo false)
    run_pe "$threads"
    run_pg "$threads"
    pe_ms=$(ms_per_cycle "$PE_TICKS" "$CYCLES")
    pg_ms=$(ms_per_cycle "$PG_TICKS" "$PG_CYCLES")
    ratio=$(awk -v a="$PG_TICKS" -v an="$PG_CYCLES" -v b="$PE_TICKS" -v bn="$CYCLES" \
        'BEGIN { if (b == 0) print "n/a"; else printf "%.3f", (a / an) / (b / bn) }')
    cloop=n/a
    if [[ -n $CLOOP ]]; then
        cloop="$("$CLOOP" "$CYCLES" "$([[ $mode == on ]] && echo threads)") ms"
    fi
    echo "| $PROCS | $mode | $pe_ms ms | $(mib "$PE_KIB") MiB | $pg_ms ms | $(mib "$PG_KIB") MiB | $ratio | $cloop |"
done
