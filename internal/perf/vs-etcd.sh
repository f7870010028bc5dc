#!/usr/bin/env bash
# vs-etcd.sh: the daemon's durable write rate against etcd's, in one run on
# one disk. It builds `ledger` and `ledger-load`, starts a real `ledger serve`
# and a real etcd (each on a fresh directory under one temp dir, on loopback),
# and drives each in turn with the same Go load client, ROUNDS times,
# alternating, so both see the same disk and the same noise.
#
#   internal/perf/vs-etcd.sh                       # 16 clients, 10 s a run, 2 rounds
#   CLIENTS=1 OP=cycle internal/perf/vs-etcd.sh    # one client: latency
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
command -v etcd >/dev/null || { echo "vs-etcd.sh: etcd not found; install it: apt-get install -y etcd-server" >&2; exit 1; }

tmp=$(mktemp -d)
chmod 700 "$tmp"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT

go build -o "$tmp/ledger" ./cmd/ledger
go build -o "$tmp/ledger-load" ./cmd/ledger-load

mkdir -m 700 "$tmp/data"
LEDGER_DATA="$tmp/data" "$tmp/ledger" serve --addr 127.0.0.1:17999 --range 40000-40999 >"$tmp/ledger.log" 2>&1 &
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
done
