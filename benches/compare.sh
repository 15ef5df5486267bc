#!/usr/bin/env bash
# Compares the cost of one collection cycle of procgroups, of Debian's
# prometheus-process-exporter and of two reference C loops on the same
# machine, the same workload and the same grouping (every process with a
# command line, by comm: the packaged all.yaml), threads on and off. See
# BENCHMARKS.md.
#
#   benches/compare.sh [-n PROCS] [-c CYCLES] [-t on|off|both] [-i INTERVAL]
#                      [-w WORKLOADS] [-x] [-e EXITS] [-m MODES] [-b]
#
# For each workload in WORKLOADS (comma-separated; default idle,main,all)
# it starts PROCS copies of target/release/procgroups-workload (20 comms,
# 0-5 extra threads each, 3 tasks per process on average, 0-6 extra open
# files) in a session of their own:
#   idle: nothing runs once started;
#   main: each process's main thread wakes once a second, does a little
#         work and sleeps again (a daemon with a timer);
#   all:  every thread of every process does so.
# Then for each thread mode it runs:
#   - process-exporter (unless -x) as a server on 127.0.0.1:<free port>,
#     scraped with curl once per cycle (it collects on every scrape);
#   - procgroups with OTEL_METRICS_EXPORTER=none on its own timer, its
#     cycles counted exactly from its debug log ("cycle done");
#   - when a C compiler is present, benches/cloop.c: the loop that opens
#     and reads stat, status and io and lists fd/ of every process (with
#     threads on, also every task's stat and status), and, threads off, the
#     loop that keeps stat, status and io open and re-reads them with pread
#     (descriptors counted by fstat of fd/), then the same loop keeping
#     only the files that fit in procgroups' kernel-memory bound (15 MiB),
#     opening and reading the others every cycle. The loops pause INTERVAL
#     before each cycle, as the agent does between two (cloop -i): a cycle
#     run right after another finds the caches warm and costs less. With
#     -b they run back to back instead.
# For each it prints the CPU time per cycle (utime+stime over CYCLES cycles
# after a warm-up cycle), procgroups' peak resident memory (VmHWM) and
# ratios taken in the same run. Where it can create a memory cgroup (v1
# memory.kmem.usage_in_bytes, or v2 memory.stat "kernel"), procgroups and
# the kept-open loop each run in one of their own, and it prints the kernel
# memory they held: what their cgroup's kernel memory dropped by when
# procgroups exited / when the loop closed its kept descriptors.
# With -e EXITS (exits per second, e.g. 1000), it then measures, on the
# same population and threads off, procgroups' CPU per cycle while
# benches/exitloop.c starts EXITS processes per second living 1-5 ms each
# (the churn of benches/accounting.sh -c), once per --exit-accounting mode
# in MODES (comma-separated; `sampling` runs without the flag; default
# sampling,auto,children), and prints a second table with the share of
# one core that is.
# Everything it starts is stopped on exit.
#
# PROCGROUPS and PROCESS_EXPORTER, when set, name the binaries to run.
# Needs root (it raises pid_max and limits for large PROCS, creates memory
# cgroups and installs prometheus-process-exporter with apt-get when
# missing) and a release build (cargo build --release), which it runs when
# the binaries are absent.

set -euo pipefail

PROCS=1000
CYCLES=40
MODES=both
INTERVAL=500ms
WORKLOADS=idle,main,all
WITH_PE=1
EXITS=0
ACCT_MODES=sampling,auto,children
PACED=1
while getopts "n:c:t:i:w:xe:m:bh" opt; do
    case "$opt" in
        n) PROCS=$OPTARG ;;
        c) CYCLES=$OPTARG ;;
        t) MODES=$OPTARG ;;
        i) INTERVAL=$OPTARG ;;
        w) WORKLOADS=$OPTARG ;;
        x) WITH_PE="" ;;
        e) EXITS=$OPTARG ;;
        m) ACCT_MODES=$OPTARG ;;
        b) PACED="" ;;
        *) sed -n '2,54p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
    esac
done
IFS=, read -r -a WORKLOADS <<<"$WORKLOADS"
for w in "${WORKLOADS[@]}"; do
    case "$w" in
        idle | main | all) ;;
        *) echo "compare.sh: -w takes idle, main and all, comma-separated" >&2; exit 2 ;;
    esac
done
case "$MODES" in
    both) MODES="off on" ;;
    on | off) ;;
    *) echo "compare.sh: -t takes on, off or both" >&2; exit 2 ;;
esac
# The interval in milliseconds, for the C loops' pause.
case "$INTERVAL" in
    *ms) INTERVAL_MS=${INTERVAL%ms} ;;
    *s) INTERVAL_MS=${INTERVAL%s}000 ;;
    *) INTERVAL_MS="" ;;
esac
if ! [[ $INTERVAL_MS =~ ^[0-9]+$ ]]; then
    echo "compare.sh: -i takes an interval in ms or s, such as 500ms or 1s" >&2
    exit 2
fi
PACE=()
[[ -z $PACED ]] || PACE=(-i "$INTERVAL_MS")
if ((CYCLES < 20)); then
    echo "compare.sh: at least 20 cycles" >&2
    exit 2
fi

ROOT=$(cd "$(dirname "$0")/.." && pwd)
PG=${PROCGROUPS:-$ROOT/target/release/procgroups}
WORKLOAD=$ROOT/target/release/procgroups-workload
PE=${PROCESS_EXPORTER:-$(command -v prometheus-process-exporter || true)}
TICK=$(getconf CLK_TCK)
WORK=$(mktemp -d /tmp/procgroups-compare.XXXXXX)
SESSION=""
PIDS=()
CGROUPS=()

# Stops the workload population, if any, and waits until it is gone.
stop_workload() {
    local s
    [[ -n $SESSION ]] || return 0
    kill -KILL -- "-$SESSION" 2>/dev/null || true
    for ((s = 0; s < 600; s++)); do
        pgrep -s "$SESSION" >/dev/null || break
        sleep 0.1
    done
    SESSION=""
}

cleanup() {
    local pid cg
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    stop_workload
    for pid in "${PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    for cg in "${CGROUPS[@]}"; do
        rmdir "$cg" 2>/dev/null || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { echo "compare.sh: $*" >&2; }

if [[ $(id -u) != 0 ]]; then
    say "run as root (limits, memory cgroups, apt-get)"
    exit 2
fi
if [[ ! -x $PG || ! -x $WORKLOAD ]]; then
    say "building release binaries"
    (cd "$ROOT" && cargo build --release --bins)
fi
if [[ -n $WITH_PE && -z $PE ]]; then
    say "installing prometheus-process-exporter"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q prometheus-process-exporter >&2 ||
        { apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q prometheus-process-exporter >&2; }
    # The package starts its own service where there is an init system.
    if command -v systemctl >/dev/null && systemctl is-active -q prometheus-process-exporter 2>/dev/null; then
        systemctl stop prometheus-process-exporter
    fi
    PE=$(command -v prometheus-process-exporter)
fi

# Room for the workload: PIDs for every task, open files, processes. The
# kept-open loop holds four descriptors per process.
TASKS=$((PROCS * 4 + 20000))
if (($(cat /proc/sys/kernel/pid_max) < TASKS)); then
    say "raising kernel.pid_max to $TASKS"
    echo "$TASKS" >/proc/sys/kernel/pid_max
fi
if (($(cat /proc/sys/kernel/threads-max) < TASKS)); then
    echo "$TASKS" >/proc/sys/kernel/threads-max
fi
ulimit -u unlimited 2>/dev/null || ulimit -u "$TASKS" 2>/dev/null || true
FILES=$((PROCS * 5 + 10000))
if [[ $(ulimit -Hn) != unlimited ]] && (($(ulimit -Hn) < FILES)); then
    ulimit -Hn "$FILES" 2>/dev/null || true
fi
ulimit -n "$(ulimit -Hn)"

CLOOP=""
if command -v cc >/dev/null && cc -O2 -o "$WORK/cloop" "$ROOT/benches/cloop.c" 2>/dev/null; then
    CLOOP=$WORK/cloop
fi
EXITLOOP=""
if ((EXITS > 0)); then
    if ! command -v cc >/dev/null || ! cc -O2 -o "$WORK/exitloop" "$ROOT/benches/exitloop.c"; then
        say "-e needs a C compiler for benches/exitloop.c"
        exit 2
    fi
    EXITLOOP=$WORK/exitloop
fi

# A memory cgroup of our own under the one this script runs in, and the
# file its kernel memory is read from: cgroup v1's kmem counter, or v2's
# memory.stat ("kernel" line). Empty when neither can be made.
MEMCG_DIR=""
KMEM_FILE=""
v1=$(awk -F: '$2 == "memory" { print $3 }' /proc/self/cgroup)
v2=$(awk -F: '$1 == "0" { print $3 }' /proc/self/cgroup)
if [[ -n $v1 && -d /sys/fs/cgroup/memory$v1 ]]; then
    MEMCG_DIR=/sys/fs/cgroup/memory${v1%/}
    KMEM_FILE=memory.kmem.usage_in_bytes
elif [[ -n $v2 && -f /sys/fs/cgroup${v2%/}/cgroup.controllers ]]; then
    MEMCG_DIR=/sys/fs/cgroup${v2%/}
    KMEM_FILE=memory.stat
fi
# Creates a memory cgroup named $1 (removed on exit) and sets MEMCG to its
# directory; empty when it cannot be made or has no kernel-memory counter.
# Not to be called in a subshell, which would lose the list to remove.
new_memcg() {
    local dir=$MEMCG_DIR/procgroups-compare-$$-$1
    MEMCG=""
    [[ -n $MEMCG_DIR ]] || return 0
    mkdir "$dir" 2>/dev/null || return 0
    CGROUPS+=("$dir")
    [[ ! -r $dir/$KMEM_FILE ]] || MEMCG=$dir
}
kmem_kib() {
    if [[ $KMEM_FILE == memory.stat ]]; then
        awk '$1 == "kernel" { print int($2 / 1024) }' "$1/memory.stat"
    else
        echo $(($(cat "$1/$KMEM_FILE") / 1024))
    fi
}

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

# Starts PROCS workload processes of kind $1 (idle, main or all) and waits
# until all are ready. Sets ALL_PROCS and ALL_TASKS (the whole host).
start_workload() {
    local wake=() s
    case "$1" in
        main) wake=(--wake-every-ms 1000) ;;
        all) wake=(--wake-every-ms 1000 --wake-threads) ;;
    esac
    say "starting $PROCS workload processes ($1)"
    : >"$WORK/ready"
    : >"$WORK/session"
    setsid bash -c '
        echo $$ >"$4"
        W=$1; N=$2; READY=$3; shift 4
        names=("${@:1:20}"); extra=("${@:21:6}"); wake=("${@:27}")
        for ((i = 0; i < N; i++)); do
            name=${names[i % 20]}
            "$W" --name "$name" --threads "${extra[i % 6]}" --thread-name "w${name:0:6}" \
                --files $((i % 7)) --ignore-stdin --lifetime-secs 7200 "${wake[@]}" \
                </dev/null >>"$READY" 2>/dev/null &
        done
        wait
    ' workload "$WORKLOAD" "$PROCS" "$WORK/ready" "$WORK/session" "${NAMES[@]}" "${EXTRA[@]}" \
        "${wake[@]}" </dev/null >/dev/null 2>&1 &
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
    # find fails when a process exits under it: count what it saw.
    ALL_PROCS=$( (find /proc -maxdepth 1 -name '[0-9]*' 2>/dev/null || true) | wc -l)
    ALL_TASKS=$( (find /proc/[0-9]*/task -maxdepth 1 -name '[0-9]*' 2>/dev/null || true) | wc -l)
    say "workload ready: $ALL_PROCS processes, $ALL_TASKS tasks on the host"
}

# utime+stime of a process, in clock ticks (threads that exited included).
cpu_ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"; }
peak_kib() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status"; }
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' 2>/dev/null ||
        echo $((20000 + RANDOM % 20000))
}
ms_per_cycle() { awk -v t="$1" -v n="$2" -v hz="$TICK" 'BEGIN { printf "%.1f", t * 1000 / hz / n }'; }
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
# $1 / $2 with two decimals; n/a when either is missing or $2 is zero.
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b + 0 == 0) print "n/a"; else printf "%.2f", a / b }'; }

# process-exporter: collects on every scrape. Sets PE_MS and PE_KIB.
run_pe() {
    local threads=$1 port pid url t0 t1 i
    PE_MS="" PE_KIB=""
    [[ -n $WITH_PE ]] || return 0
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
    PE_MS=$(ms_per_cycle $((t1 - t0)) "$CYCLES")
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
# log, in a memory cgroup of its own when one can be made; arguments after
# the first are passed to it. Sets PG_MS, PG_KIB, PG_KMEM (KiB of kernel
# memory given back when it exited), PG_PROBE (" (no probe)" when it could
# not ask taskstats about thread groups) and PG_CORE (its CPU over the wall
# time of the measured cycles, in % of one core).
run_pg() {
    local threads=$1 pid log t0 t1 c0 c1 cg k0="" w0 w1
    shift
    log=$WORK/pg.log
    rm -f "$log"
    new_memcg "pg-$RUN"
    cg=$MEMCG
    OTEL_METRICS_EXPORTER=none RUST_LOG=procgroups::agent=debug CG=$cg \
        sh -c '[ -z "$CG" ] || echo $$ >"$CG/cgroup.procs"; exec "$@"' procgroups \
        "$PG" --config "$WORK/all.yaml" --threads="$threads" --gather-smaps=false \
        --interval "$INTERVAL" --status-socket "$WORK/status.sock" "$@" 2>"$log" &
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
    w0=$(date +%s.%N)
    while (($(pg_cycles) < c0 + CYCLES)); do
        sleep 0.05
    done
    t1=$(cpu_ticks "$pid")
    w1=$(date +%s.%N)
    c1=$(pg_cycles)
    PG_MS=$(ms_per_cycle $((t1 - t0)) $((c1 - c0)))
    PG_CORE=$(awk -v t=$((t1 - t0)) -v hz="$TICK" -v a="$w0" -v b="$w1" 'BEGIN { printf "%.1f", 100 * t / hz / (b - a) }')
    PG_KIB=$(peak_kib "$pid")
    [[ -z $cg ]] || k0=$(kmem_kib "$cg")
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    PG_KMEM=""
    [[ -z $k0 ]] || PG_KMEM=$((k0 - $(kmem_kib "$cg")))
    # Without the taskstats probe (no CAP_NET_ADMIN, another pid
    # namespace) every cycle reads more: said beside the figure.
    PG_PROBE=""
    if grep -q "thread groups are not asked about" "$log"; then
        PG_PROBE=" (no probe)"
        say "procgroups ran without the taskstats probe: $(grep -m1 "thread groups are not asked about" "$log")"
    fi
}

# procgroups' CPU under exit churn, threads off, once per accounting mode:
# exitloop starts EXITS processes per second living 1-5 ms. Adds to CHURN_ROWS.
run_churn() {
    local mode churn flag
    for mode in ${ACCT_MODES//,/ }; do
        flag=()
        [[ $mode == sampling ]] || flag=(--exit-accounting "$mode")
        # Long enough for the warm-up and the measured cycles at any load.
        "$EXITLOOP" "$EXITS" 1 5 0 100000 >"$WORK/exitloop.out" &
        churn=$!
        PIDS+=("$churn")
        sleep 2
        RUN=$((RUN + 1))
        run_pg false "${flag[@]}"
        kill "$churn" 2>/dev/null || true
        wait "$churn" 2>/dev/null || true
        CHURN_ROWS+=("| $workload | $PROCS ($ALL_PROCS processes) | $EXITS | $mode | $PG_MS ms$PG_PROBE | $PG_CORE % | $(mib "$PG_KIB") MiB |")
        echo "${CHURN_ROWS[-1]}" >&2
    done
}

# The C loops. Sets C_OPEN_MS, and threads off C_KEPT_MS and C_KEPT_KMEM
# (KiB of kernel memory given back when it closed its descriptors), and
# C_BOUND_MS and C_BOUND_KMEM for the same loop held to procgroups' bound.
run_cloops() {
    local mode=$1
    C_OPEN_MS="" C_KEPT_MS="" C_KEPT_KMEM="" C_BOUND_MS="" C_BOUND_KMEM=""
    [[ -n $CLOOP ]] || return 0
    C_OPEN_MS=$("$CLOOP" "${PACE[@]}" "$CYCLES" "$([[ $mode == on ]] && echo threads || echo open)")
    [[ $mode == off ]] || return 0
    run_kept "kept-$RUN"
    C_KEPT_MS=$KEPT_MS C_KEPT_KMEM=$KEPT_KMEM
    # procgroups keeps files and path-only directories within 15 MiB of
    # kernel memory (FsSourceOptions::KEPT_KERNEL_BYTES): here, as many
    # files of about 4,480 bytes as fit beside the loop's one fd/
    # directory of 208 bytes per process.
    run_kept "bound-$RUN" $((((15 << 20) - ALL_PROCS * 208) / 4480))
    C_BOUND_MS=$KEPT_MS C_BOUND_KMEM=$KEPT_KMEM
}

# The kept-open loop in a memory cgroup named $1, keeping at most $2 files
# open when given. Sets KEPT_MS (CPU per cycle) and KEPT_KMEM (KiB of
# kernel memory it held).
run_kept() {
    local cg kmem out
    new_memcg "$1"
    cg=$MEMCG
    kmem=${cg:+$cg/$KMEM_FILE}
    out=$(CG=$cg sh -c '[ -z "$CG" ] || echo $$ >"$CG/cgroup.procs"; exec "$@"' cloop \
        "$CLOOP" "${PACE[@]}" "$CYCLES" kept "${kmem:--}" ${2:+"$2"})
    read -r KEPT_MS KEPT_KMEM _ <<<"$out"
}

echo
echo "N=$PROCS, $CYCLES cycles each, interval $INTERVAL, $(nproc) CPUs, $(uname -r)"
echo "C loops: $([[ -n $PACED ]] && echo "a pause of $INTERVAL before each cycle" || echo "cycles back to back")"
[[ -z $WITH_PE ]] || echo "process-exporter: $("$PE" -version 2>&1 | head -1)"
echo "procgroups: $("$PG" --version)"
echo "kernel memory: ${MEMCG_DIR:+$KMEM_FILE of memory cgroups under $MEMCG_DIR}"
echo
ROWS=()
CHURN_ROWS=()
RUN=0
for workload in "${WORKLOADS[@]}"; do
    start_workload "$workload"
    for mode in $MODES; do
        RUN=$((RUN + 1))
        threads=$([[ $mode == on ]] && echo true || echo false)
        run_pe "$threads"
        run_pg "$threads"
        run_cloops "$mode"
        ROWS+=("| $workload | $PROCS ($ALL_PROCS processes, $ALL_TASKS tasks) | $mode | ${PE_MS:-–}${PE_MS:+ ms} | $PG_MS ms$PG_PROBE | $(mib "$PG_KIB") MiB | ${PG_KMEM:+$(mib "$PG_KMEM") MiB} | $(ratio "$PG_MS" "$PE_MS") | ${C_OPEN_MS:-–}${C_OPEN_MS:+ ms} | $(ratio "$PG_MS" "$C_OPEN_MS") | ${C_KEPT_MS:-–}${C_KEPT_MS:+ ms} | $(ratio "$PG_MS" "$C_KEPT_MS") | ${C_KEPT_KMEM:+$(mib "$C_KEPT_KMEM") MiB} | ${C_BOUND_MS:-–}${C_BOUND_MS:+ ms} | $(ratio "$PG_MS" "$C_BOUND_MS") | ${C_BOUND_KMEM:+$(mib "$C_BOUND_KMEM") MiB} |")
        echo "${ROWS[-1]}" >&2
    done
    [[ -z $EXITLOOP ]] || run_churn
    stop_workload
done
echo "| workload | N | threads | process-exporter CPU/cycle | procgroups CPU/cycle | procgroups peak RSS | procgroups kernel memory held | procgroups / process-exporter | C loop open+read | procgroups / C loop | C loop kept open | procgroups / kept open | kept open: kernel memory held | C loop kept open within 15 MiB | procgroups / kept within 15 MiB | kept within 15 MiB: kernel memory held |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
printf '%s\n' "${ROWS[@]}"
if ((${#CHURN_ROWS[@]} > 0)); then
    echo
    echo "Under exit churn (exitloop EXITS 1 5 0: processes living 1-5 ms), threads off, interval $INTERVAL:"
    echo
    echo "| workload | N | exits/s | exit accounting | procgroups CPU/cycle | of one core | procgroups peak RSS |"
    echo "|---|---|---|---|---|---|---|"
    printf '%s\n' "${CHURN_ROWS[@]}"
fi
