#!/usr/bin/env bash
# Coverage of the node's CPU under exit churn, and the agent's own CPU at a
# high exit rate. See BENCHMARKS.md ("Accounting"). Run as root.
#
#   benches/accounting.sh [-w WINDOW] [-r RATE] [-b BUSY] [-i INTERVAL]
#                         [-m MODES] [-x] [-c COST_RATE]
#
# Workload: one long-lived procgroups-workload spinning one thread, and
# benches/exitloop.c starting RATE (default 100) processes per second, each
# living 5-500 ms and busy on the CPU for BUSY % (default 4) of its life.
# Every subject gets the same rule, one that matches every process, kernel
# threads included ({name: "{{.Comm}}", cmdline: ['.*']}), and is measured
# over WINDOW seconds (default 30) in turn:
#
# - procgroups, once per mode in MODES (comma-separated values of
#   --exit-accounting, default `auto,children`; `default` runs without the
#   flag, which for an agent without exit accounting is sampling only),
#   OTEL_METRICS_EXPORTER=none, --interval INTERVAL (default 5s): the
#   coverage object of `procgroups status --output json`, read from a cycle
#   once the agent has run two and from the first cycle that ends after
#   WINDOW, gives Σ group CPU / node CPU over the cycles between;
# - with -x, Debian's prometheus-process-exporter, scraped every INTERVAL:
#   Σ namedprocess_namegroup_cpu_seconds_total over the window against the
#   node's user + nice + system from /proc/stat read at the same scrapes.
#
# With -c COST_RATE, it then measures the agent's own CPU (utime + stime of
# /proc/PID/stat over WINDOW) in each mode while exitloop starts COST_RATE
# processes per second living 1-5 ms each, without busy work.
# AGENT_BIN and WORKLOAD_BIN run other builds of the agent and the
# workload (an older agent, for a baseline). Everything it starts is stopped on exit.

set -euo pipefail

WINDOW=30
RATE=100
BUSY=4
INTERVAL=5s
MODES=auto,children
EXPORTER=false
COST_RATE=0
while getopts "w:r:b:i:m:xc:h" opt; do
    case "$opt" in
        w) WINDOW=$OPTARG ;;
        r) RATE=$OPTARG ;;
        b) BUSY=$OPTARG ;;
        i) INTERVAL=$OPTARG ;;
        m) MODES=$OPTARG ;;
        x) EXPORTER=true ;;
        c) COST_RATE=$OPTARG ;;
        *) sed -n '2,31p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
    esac
done

ROOT=$(cd "$(dirname "$0")/.." && pwd)
PG=${AGENT_BIN:-$ROOT/target/release/procgroups}
WORKLOAD=${WORKLOAD_BIN:-$ROOT/target/release/procgroups-workload}
WORK=$(mktemp -d /tmp/procgroups-accounting.XXXXXX)
PIDS=()

cleanup() {
    for p in "${PIDS[@]}"; do
        kill "$p" 2>/dev/null || true
    done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { echo "accounting.sh: $*" >&2; }

if [[ ! -x $PG || ! -x $WORKLOAD ]]; then
    say "building release binaries"
    (cd "$ROOT" && cargo build --release --bins)
fi
cc -O2 -o "$WORK/exitloop" "$ROOT/benches/exitloop.c"
cat >"$WORK/all.yaml" <<'YAML'
process_names:
  - name: "{{.Comm}}"
    cmdline: ['.*']
YAML
SECS=${INTERVAL%s}

# The node's busy CPU (user + nice + system of the cpu line), seconds.
node_cpu() {
    awk -v hz="$(getconf CLK_TCK)" '$1 == "cpu" { printf "%.2f\n", ($2 + $3 + $4) / hz; exit }' /proc/stat
}
# utime + stime of a process, seconds.
proc_cpu() {
    awk -v hz="$(getconf CLK_TCK)" '{ sub(/.*\) /, ""); printf "%.2f\n", ($12 + $13) / hz }' "/proc/$1/stat"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.1f %%", 100 * a / b; else printf "n/a" }'; }

start_agent() { # MODE SOCKET
    local flag=()
    [[ $1 != default ]] && flag=(--exit-accounting "$1")
    OTEL_METRICS_EXPORTER=none "$PG" --config "$WORK/all.yaml" --interval "$INTERVAL" \
        --status-socket "$2" "${flag[@]}" 2>"$WORK/agent-$1.log" &
    AGENT=$!
    PIDS+=("$AGENT")
}
# "CYCLE END NODE ATTRIBUTED" of the agent's last cycle: its number, when
# it ended (Unix seconds), and the coverage totals (node and attributed CPU, seconds). Retries until the agent
# answers with a coverage object (it has one from its second cycle on) whose
# cycle is past AFTER (default 0); fails after 120 s, with the agent's log.
coverage_now() { # SOCKET [AFTER]
    local deadline=$((SECONDS + 120)) json line
    while ((SECONDS < deadline)); do
        if json=$(timeout 30 "$PG" status --socket "$1" --output json 2>>"$WORK/status.err"); then
            line=$(python3 -c '
import json, sys
v = json.loads(sys.stdin.read())
c = v.get("coverage") or {}
n = (v.get("cycle") or {}).get("count") or 0
if "node_cpu_seconds" in c and n > int(sys.argv[1]):
    print(n, v["cycle"]["end_time_seconds"], c["node_cpu_seconds"], c["attributed_cpu_seconds"])
' "${2:-0}" <<<"$json") || true
            if [[ -n $line ]]; then
                echo "$line"
                return 0
            fi
        fi
        sleep 0.5
    done
    say "no coverage from the agent at $1 within 120 s; its log:"
    cat "$WORK"/agent-*.log >&2
    return 1
}
stop_agent() {
    kill "$AGENT" 2>/dev/null || true
    wait "$AGENT" 2>/dev/null || true
}

start_churn() { # RATE MIN MAX BUSY SECONDS
    "$WORK/exitloop" "$@" >"$WORK/exitloop.out" &
    CHURN=$!
    PIDS+=("$CHURN")
}

coverage_run() {
    say "workload: exitloop $RATE/s living 5-500 ms busy $BUSY %, one spinning thread"
    "$WORKLOAD" --name pglong --threads 1 --spin --ignore-stdin </dev/null >/dev/null 2>&1 &
    PIDS+=("$!")
    local runs=0
    [[ $EXPORTER == true ]] && runs=1
    runs=$((runs + $(tr ',' '\n' <<<"$MODES" | wc -l)))
    start_churn "$RATE" 5 500 "$BUSY" $((runs * (WINDOW + 4 * SECS + 10) + 10))
    sleep 3
    echo
    echo "| subject | window | node CPU | Σ group CPU | coverage |"
    echo "|---|---|---|---|---|"
    local IFS_SAVE=$IFS mode
    IFS=,
    for mode in $MODES; do
        IFS=$IFS_SAVE
        local sock=$WORK/status-$mode.sock
        start_agent "$mode" "$sock"
        # The first reading once the agent has run two cycles with the
        # node's CPU; the last one from a cycle that ended after WINDOW.
        local c0 e0 n0 a0 c1 e1 n1 a1 line
        line=$(coverage_now "$sock" 1) || exit 1
        read -r c0 e0 n0 a0 <<<"$line"
        sleep "$WINDOW"
        line=$(coverage_now "$sock" "$c0") || exit 1
        sleep "$SECS"
        line=$(coverage_now "$sock" "${line%% *}") || exit 1
        read -r c1 e1 n1 a1 <<<"$line"
        local dn da
        dn=$(awk -v a="$n1" -v b="$n0" 'BEGIN { printf "%.2f", a - b }')
        da=$(awk -v a="$a1" -v b="$a0" 'BEGIN { printf "%.2f", a - b }')
        echo "| procgroups ($mode) | $(awk -v a="$e1" -v b="$e0" 'BEGIN { printf "%.0f", a - b }') s, cycles $c0-$c1 | $dn s | $da s | $(ratio "$da" "$dn") |"
        stop_agent
        IFS=,
    done
    IFS=$IFS_SAVE
    if [[ $EXPORTER == true ]]; then
        local port=19256
        prometheus-process-exporter -config.path "$WORK/all.yaml" -threads=false \
            -gather-smaps=false -web.listen-address "127.0.0.1:$port" 2>"$WORK/pe.log" &
        PIDS+=("$!")
        sleep 1
        scrape() {
            curl -sf "http://127.0.0.1:$port/metrics" |
                awk '/^namedprocess_namegroup_cpu_seconds_total/ { s += $2 } END { printf "%.2f\n", s }'
        }
        scrape >/dev/null
        sleep "$SECS"
        local s0 n0 s1 n1 t0 elapsed=0
        s0=$(scrape)
        n0=$(node_cpu)
        t0=$SECONDS
        # Scraped every INTERVAL, as a Prometheus server would; it collects
        # on each scrape.
        while ((elapsed < WINDOW)); do
            sleep "$SECS"
            elapsed=$((elapsed + SECS))
            s1=$(scrape)
            n1=$(node_cpu)
        done
        local dn da
        dn=$(awk -v a="$n1" -v b="$n0" 'BEGIN { printf "%.2f", a - b }')
        da=$(awk -v a="$s1" -v b="$s0" 'BEGIN { printf "%.2f", a - b }')
        echo "| process-exporter $(dpkg-query -W -f '${Version}' prometheus-process-exporter 2>/dev/null || true) | $((SECONDS - t0)) s | $dn s | $da s | $(ratio "$da" "$dn") |"
    fi
    kill "$CHURN" 2>/dev/null || true
}

cost_run() {
    echo
    echo "Agent CPU at $COST_RATE exits/s (exitloop $COST_RATE 1 5 0), over $WINDOW s:"
    echo
    echo "| mode | exits started | agent CPU | of one core |"
    echo "|---|---|---|---|"
    local IFS_SAVE=$IFS mode
    IFS=,
    for mode in $MODES; do
        IFS=$IFS_SAVE
        local sock=$WORK/cost-$mode.sock
        start_churn "$COST_RATE" 1 5 0 $((WINDOW + 3 * SECS + 5))
        start_agent "$mode" "$sock"
        coverage_now "$sock" 1 >/dev/null || exit 1
        local c0 c1 t0
        c0=$(proc_cpu "$AGENT")
        t0=$(date +%s.%N)
        sleep "$WINDOW"
        c1=$(proc_cpu "$AGENT")
        local wall used
        wall=$(awk -v t="$t0" -v n="$(date +%s.%N)" 'BEGIN { printf "%.2f", n - t }')
        used=$(awk -v a="$c1" -v b="$c0" 'BEGIN { printf "%.2f", a - b }')
        stop_agent
        wait "$CHURN" 2>/dev/null || true
        echo "| $mode | $(sed -n 's/children=\([0-9]*\).*/\1/p' "$WORK/exitloop.out") in $((WINDOW + 3 * SECS + 5)) s | $used s in $wall s | $(ratio "$used" "$wall") |"
        IFS=,
    done
    IFS=$IFS_SAVE
}

coverage_run
((COST_RATE > 0)) && cost_run
exit 0
