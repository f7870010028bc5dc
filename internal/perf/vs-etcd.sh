#!/usr/bin/env bash
# vs-etcd.sh: the daemon's durable write rate against etcd's, in one run on
# one disk. It builds `ledger` and `ledger-load`, starts a real `ledger serve`
# and a real etcd (each on a fresh directory under one temp dir, on loopback),
# and drives each in turn with the same Go load client, ROUNDS times,
# alternating, so both see the same disk and the same noise.
#
#   internal/perf/vs-etcd.sh                       # 16 clients, 10 s a run, 2 rounds
#   CLIENTS=1 internal/perf/vs-etcd.sh              # one client: latency, against a
#                                                   # bare bbolt Update on the same disk
#
# Each round also measures the HTTP floor (GET /healthz of the same daemon:
# a round trip with nothing behind it) and times whole `ledger allocate`
# processes through the daemon against a Go hello world's whole run and
# `ledger version`'s (the binary's start alone); PROCS=0 skips the processes.
# Each round ends with its ratios against the targets.
#
# etcd comes from the machine's package manager: `apt-get install -y etcd-server`
# (Debian) gives /usr/bin/etcd. A cycle is two writes (allocate, release); an
# etcd put is one. The lines to compare are "rate=" (cycles/s against puts/s)
# and "per write=" (the server's CPU per write, from /proc/PID/stat).
set -euo pipefail
cd "$(dirname "$0")/../.."
CLIENTS=${CLIENTS:-16}
DURATION=${DURATION:-10s}
ROUNDS=${ROUNDS:-2}
OP=${OP:-cycle}
PROCS=${PROCS:-40}
command -v etcd >/dev/null || { echo "vs-etcd.sh: etcd not found; install it: apt-get install -y etcd-server" >&2; exit 1; }

tmp=$(mktemp -d)
chmod 700 "$tmp"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT

go build -o "$tmp/ledger" ./cmd/ledger
go build -o "$tmp/ledger-load" ./cmd/ledger-load
mkdir "$tmp/hello-src"
printf 'package main\n\nimport "fmt"\n\nfunc main() { fmt.Println("hello") }\n' >"$tmp/hello-src/main.go"
(cd "$tmp/hello-src" && GO111MODULE=off go build -o "$tmp/hello" .)

# p50 runs a command PROCS times and prints the median wall time of one run.
p50() {
  local times=()
  for _ in $(seq "$PROCS"); do
    local t0 t1
    t0=$(date +%s%N)
    "$@" >/dev/null
    t1=$(date +%s%N)
    times+=($(( (t1 - t0) / 1000 )))
  done
  printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {printf "%.2f ms\n", a[int((NR+1)/2)]/1000}'
}

mkdir -m 700 "$tmp/data"
LEDGER_DATA="$tmp/data" "$tmp/ledger" serve --addr 127.0.0.1:17999 --range 20000-20999 >"$tmp/ledger.log" 2>&1 &
lpid=$!; pids+=("$lpid")
etcd --data-dir "$tmp/etcd" --listen-client-urls http://127.0.0.1:12379 \
     --advertise-client-urls http://127.0.0.1:12379 --listen-peer-urls http://127.0.0.1:12380 \
     >"$tmp/etcd.log" 2>&1 &
epid=$!; pids+=("$epid")

for i in $(seq 100); do
  if curl -fsS http://127.0.0.1:17999/healthz >/dev/null 2>&1 && curl -fsS http://127.0.0.1:12379/health >/dev/null 2>&1; then break; fi
  sleep 0.1
done
token=""
[ -f "$tmp/data/token" ] && token=$(cat "$tmp/data/token")

# dur converts a Go duration ("764.237µs", "1.5ms", "2s") to microseconds.
dur() { awk -v d="$1" 'BEGIN { n = d + 0; if (d ~ /µs$/) print n; else if (d ~ /ms$/) print n * 1000; else if (d ~ /ns$/) print n / 1000; else print n * 1000000 }'; }
# field prints the value of key= in a run's output (e.g. field p50 out).
field() { grep -o "$1=[^ ]*" "$2" | head -1 | cut -d= -f2; }

echo "cores=$(nproc) clients=$CLIENTS duration=$DURATION rounds=$ROUNDS etcd=$(etcd --version | head -1)"
for r in $(seq "$ROUNDS"); do
  echo "--- round $r: portledger ($OP, two writes per cycle)"
  "$tmp/ledger-load" --addr 127.0.0.1:17999 --token "$token" --clients "$CLIENTS" --duration "$DURATION" --op "$OP" --pid "$lpid" | tee "$tmp/ledger.out"
  echo "--- round $r: etcd (durable put, one write each)"
  "$tmp/ledger-load" --addr 127.0.0.1:12379 --clients "$CLIENTS" --duration "$DURATION" --op etcd-put --pid "$epid" | tee "$tmp/etcd.out"
  echo "--- round $r: a bare bbolt Update on the same disk (one write each)"
  "$tmp/ledger-load" --dir "$tmp" --clients "$CLIENTS" --duration "$DURATION" --op bbolt-update | tee "$tmp/bbolt.out"
  echo "--- round $r: the HTTP floor, GET /healthz of the same daemon (nothing written)"
  "$tmp/ledger-load" --addr 127.0.0.1:17999 --token "$token" --clients "$CLIENTS" --duration "$DURATION" --op ping --pid "$lpid" | tee "$tmp/ping.out"
  echo "--- round $r: against the targets"
  rate=$(field rate "$tmp/ledger.out"); erate=$(field rate "$tmp/etcd.out")
  cyc=$(dur "$(field p50 "$tmp/ledger.out")"); bolt=$(dur "$(field p50 "$tmp/bbolt.out")"); ping=$(dur "$(field p50 "$tmp/ping.out")")
  awk -v a="$rate" -v b="$erate" 'BEGIN { printf "cycles/s against etcd puts/s: %.2fx (target >= 2x)\n", a / b }'
  echo "daemon CPU per write: $(field write "$tmp/ledger.out") (target <= 50µs); per GET /healthz: $(field request "$tmp/ping.out"); etcd per put: $(field write "$tmp/etcd.out")"
  if [ "$CLIENTS" = 1 ]; then # with more, the bare Updates queue behind each other
    awk -v c="$cyc" -v b="$bolt" -v p="$ping" 'BEGIN { printf "cycle p50 against a bare Update p50: %.2fx (target <= 2x); two round trips and two bare commits alone: %.2fx\n", c / b, (2 * p + 2 * b) / b }'
  fi
  if [ "$PROCS" -gt 0 ]; then
    echo "--- round $r: whole processes, p50 of $PROCS runs each"
    hello=$(p50 "$tmp/hello"); version=$(p50 "$tmp/ledger" version)
    alloc=$(p50 env LEDGER_DATA="$tmp/data" "$tmp/ledger" allocate --service "proc-$r")
    echo "hello world: $hello"
    echo "ledger version (the binary's start, no daemon): $version"
    echo "ledger allocate via the daemon: $alloc"
    awk -v a="${alloc% ms}" -v h="${hello% ms}" -v v="${version% ms}" 'BEGIN { printf "ledger allocate against hello world: %.2fx (target <= 1.5x); ledger version alone: %.2fx\n", a / h, v / h }'
  fi
done
