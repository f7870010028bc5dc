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
# Each round also times whole `ledger allocate` processes through the daemon
# against a Go hello world's whole run (PROCS=0 skips it).
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

echo "cores=$(nproc) clients=$CLIENTS duration=$DURATION rounds=$ROUNDS etcd=$(etcd --version | head -1)"
for r in $(seq "$ROUNDS"); do
  echo "--- round $r: portledger ($OP, two writes per cycle)"
  "$tmp/ledger-load" --addr 127.0.0.1:17999 --token "$token" --clients "$CLIENTS" --duration "$DURATION" --op "$OP" --pid "$lpid"
  echo "--- round $r: etcd (durable put, one write each)"
  "$tmp/ledger-load" --addr 127.0.0.1:12379 --clients "$CLIENTS" --duration "$DURATION" --op etcd-put --pid "$epid"
  echo "--- round $r: a bare bbolt Update on the same disk (one write each)"
  "$tmp/ledger-load" --dir "$tmp" --clients "$CLIENTS" --duration "$DURATION" --op bbolt-update
  if [ "$PROCS" -gt 0 ]; then
    echo "--- round $r: whole processes, p50 of $PROCS runs each"
    echo "hello world: $(p50 "$tmp/hello")"
    echo "ledger allocate via the daemon: $(p50 env LEDGER_DATA="$tmp/data" "$tmp/ledger" allocate --service "proc-$r")"
  fi
done
