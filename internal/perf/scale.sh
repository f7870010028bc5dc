#!/usr/bin/env bash
# scale.sh: the daemon on a busy CI host's year. It takes the cached
# 10M-event fixture with 1M distinct service names (building it the first
# time: go run ./internal/fixture/cmd/build), copies it to a scratch data
# directory, and measures with real processes:
#
#   - `ledger serve` start to its first /healthz answer, with the projection
#     files present (START_ROUNDS times) and without them (the files are
#     caught up behind the API: the time until they are is printed too);
#   - the daemon's anonymous memory (RssAnon) idle, under the 16-client
#     load, during the files' catch-up and after the heaviest reads;
#   - its idle CPU against a daemon on an empty log, over IDLE seconds each;
#   - whole CLI processes through the daemon (p50/p95 of PROCS runs);
#   - `ledger replay` of the files (daemon stopped) against a plain write
#     of as many bytes to the same disk;
#   - `ledger compact`: the file's size before and after, and the CLI's
#     answers before and after, which must be the same.
#
#   internal/perf/scale.sh                         # 10M events, 1M names
#   EVENTS=1000000 NAMES=100000 internal/perf/scale.sh
#
# The fixture's year runs from 2025-01-01 to 2026-01-01 UTC, so the windows
# below are absolute dates: "--since 2025-12-25" is the year's last week.
set -euo pipefail
cd "$(dirname "$0")/../.."
EVENTS=${EVENTS:-10000000}
NAMES=${NAMES:-1000000}
PROCS=${PROCS:-20}
START_ROUNDS=${START_ROUNDS:-3}
IDLE=${IDLE:-20}
LOAD=${LOAD:-20s}
PORT=${PORT:-17998}
ADDR=127.0.0.1:$PORT

tmp=$(mktemp -d)
chmod 700 "$tmp"
dpid=""
cleanup() { if [ -n "$dpid" ]; then kill "$dpid" 2>/dev/null; wait "$dpid" 2>/dev/null; fi; rm -rf "$tmp"; }
trap cleanup EXIT

go build -o "$tmp/ledger" ./cmd/ledger
go build -o "$tmp/ledger-load" ./cmd/ledger-load
fixture=$(go run ./internal/fixture/cmd/build -events "$EVENTS" -names "$NAMES")
echo "cores=$(nproc) events=$EVENTS names=$NAMES fixture=$fixture"
data=$tmp/data
t0=$(date +%s%N)
cp -r "$fixture" "$data"
rm -f "$data/complete"
chmod 700 "$data"
sync # else the daemon's first commit would wait for the copy's dirty pages
echo "copied the fixture in $(( ($(date +%s%N) - t0) / 1000000 )) ms"
export LEDGER_DATA=$data
L="$tmp/ledger"

ms() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }
rss() { awk '/^RssAnon/ {printf "%.1f MiB", $2/1024}' "/proc/$1/status"; }
rsskb() { awk '/^RssAnon/ {print $2}' "/proc/$1/status"; }
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
dbsize() { stat -c %s "$data/databases/port_ledger/ledger.db"; }

# start_daemon DIR: starts `ledger serve` on DIR (its pid in dpid) and
# sets took to the time to its first /healthz answer.
start_daemon() {
  local t
  t=$(date +%s%N)
  LEDGER_DATA=$1 "$L" serve --addr "$ADDR" >>"$tmp/serve.log" 2>&1 &
  dpid=$!
  until curl -fsS "http://$ADDR/healthz" >/dev/null 2>&1; do
    kill -0 "$dpid" 2>/dev/null || { echo "the daemon died:"; tail "$tmp/serve.log"; exit 1; }
    sleep 0.005
  done
  took="$(ms "$t") ms to /healthz"
}
stop_daemon() { kill "$dpid"; wait "$dpid" 2>/dev/null || true; dpid=""; }

# pcts CMD...: runs a command PROCS times and prints p50 and p95 of its
# whole run.
pcts() {
  local times=() t
  for _ in $(seq "$PROCS"); do
    t=$(date +%s%N)
    "$@" >/dev/null
    times+=($(( ($(date +%s%N) - t) / 1000 )))
  done
  printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {printf "p50 %.1f ms, p95 %.1f ms\n", a[int((NR+1)/2)]/1000, a[int(NR*0.95+0.999)]/1000}'
}

# peak PID SECONDS: the highest RssAnon over SECONDS, sampled every 0.2 s.
peak() {
  local max=0 v
  for _ in $(seq $(( $2 * 5 ))); do
    v=$(rsskb "$1" 2>/dev/null || echo 0)
    if [ "$v" -gt "$max" ]; then max=$v; fi
    sleep 0.2
  done
  awk -v k="$max" 'BEGIN {printf "%.1f MiB", k/1024}'
}

events_total=$EVENTS
size0=$(dbsize)
echo "--- disk: ledger.db $size0 bytes, $(awk -v s="$size0" -v n="$events_total" 'BEGIN {printf "%.1f", s/n}') bytes/event; JSONL logs $(du -sb "$data/logs" | cut -f1) bytes"

echo "--- start with the projection files present"
dd if="$data/databases/port_ledger/ledger.db" iflag=nocache count=0 status=none # drop the log's pages from the page cache
start_daemon "$data"
echo "cold (the log's pages dropped from the page cache): $took, RssAnon $(rss "$dpid")"
stop_daemon
for r in $(seq "$START_ROUNDS"); do
  start_daemon "$data"
  echo "round $r: $took, RssAnon $(rss "$dpid")"
  if [ "$r" -lt "$START_ROUNDS" ]; then stop_daemon; fi
done
token=$(cat "$data/token" 2>/dev/null || true)
sleep 2
echo "idle RssAnon after 2 s: $(rss "$dpid")"
c0=$(ticks "$dpid"); sleep "$IDLE"; c1=$(ticks "$dpid")
echo "idle CPU over ${IDLE}s: $(( (c1 - c0) * 10 )) ms ($(awk -v t=$((c1 - c0)) -v s="$IDLE" 'BEGIN {printf "%.2f%%", t/s}') of a core); RssAnon $(rss "$dpid")"

echo "--- 16 clients, $LOAD"
peakfile=$tmp/peak
( peak "$dpid" "${LOAD%s}" >"$peakfile" ) &
ppid=$!
"$tmp/ledger-load" --addr "$ADDR" --token "$token" --clients 16 --duration "$LOAD" --pid "$dpid" | grep -E 'rate|per write|p50|errors' || true
wait "$ppid"
echo "peak RssAnon under the load: $(cat "$peakfile"); after: $(rss "$dpid")"
added=$(curl -fsS -H "Authorization: Bearer $token" "http://$ADDR/metrics" | awk '/^portledger_events_appended_total/ {n += $2} END {printf "%d", n}')
events_total=$(( EVENTS + added ))
echo "the daemon appended $added events; the log holds $events_total"

echo "--- whole CLI processes through the daemon, $PROCS runs each"
echo "status:                              $(pcts "$L" status)"
echo "status --at 2025-07-01:              $(pcts "$L" status --at 2025-07-01)"
echo "who 8003 --at 2025-07-01:            $(pcts "$L" who 8003 --at 2025-07-01)"
echo "who 8003:                            $(pcts "$L" who 8003)"
echo "history --port 8003 --newest --limit 100: $(pcts "$L" history --port 8003 --newest --limit 100)"
echo "history --port 8003 --since 2025-12-31:   $(pcts "$L" history --port 8003 --since 2025-12-31)"
echo "usage --since 2025-12-25 (a week):   $(pcts "$L" usage --since 2025-12-25)"
echo "RssAnon after the CLI reads: $(rss "$dpid")"

echo "--- the same load on a fresh log, in the same run"
mkdir -m 700 "$tmp/fresh"
fpid_save=$dpid
ADDR_SAVE=$ADDR
ADDR=127.0.0.1:$((PORT + 1))
start_daemon "$tmp/fresh"
echo "fresh log: $took, RssAnon $(rss "$dpid")"
c0=$(ticks "$dpid"); sleep "$IDLE"; c1=$(ticks "$dpid")
echo "fresh log: idle CPU over ${IDLE}s: $(( (c1 - c0) * 10 )) ms"
ftoken=$(cat "$tmp/fresh/token" 2>/dev/null || true)
"$tmp/ledger-load" --addr "$ADDR" --token "$ftoken" --clients 16 --duration "$LOAD" --pid "$dpid" | grep -E 'rate|per write|p50|errors' || true
echo "fresh log: RssAnon after the load $(rss "$dpid")"
stop_daemon
dpid=$fpid_save
ADDR=$ADDR_SAVE

echo "--- the heaviest reads over HTTP"
get() {
  local t
  t=$(date +%s%N)
  if curl -fsS --max-time 300 -H "Authorization: Bearer $token" -o "$tmp/body" "http://$ADDR$1"; then
    echo "GET $1: $(stat -c %s "$tmp/body") bytes in $(ms "$t") ms, RssAnon then $(rss "$dpid")"
  else
    echo "GET $1: FAILED after $(ms "$t") ms; the daemon: $(kill -0 "$dpid" 2>/dev/null && echo "alive, RssAnon $(rss "$dpid")" || echo gone); its log ends: $(tail -2 "$tmp/serve.log")"
  fi
}
get "/api/ports/history?port=8003"
get "/api/ports/history?port=8003&order=newest&limit=100"
get "/api/ports/usage?since=2025-12-25T00:00:00Z"
get "/api/ports/usage?since=2025-01-01T00:00:00Z"
sleep 2
echo "RssAnon 2 s after the heaviest reads: $(rss "$dpid")"

stop_daemon

echo "--- start without the projection files (rebuilt behind the API)"
rm -rf "$data/logs" "$data/databases/port_registry"
sync
t=$(date +%s%N)
start_daemon "$data"
echo "$took, RssAnon $(rss "$dpid")"
sleep 1
echo "ledger status says: $("$L" status | grep -i 'projection files' || echo '(nothing of the files)')"
( peak "$dpid" 600 >"$peakfile" ) &
ppid=$!
until grep -q "projection files caught up" "$tmp/serve.log"; do
  kill -0 "$dpid" || break
  sleep 0.2
done
echo "files caught up $(ms "$t") ms after the start: $(grep "projection files caught up" "$tmp/serve.log" | tail -1)"
kill "$ppid" 2>/dev/null || true
echo "RssAnon after the catch-up: $(rss "$dpid")"
stop_daemon

echo "--- ledger replay (daemon stopped)"
t=$(date +%s%N)
/usr/bin/time -f "ledger replay: %U s user, %S s sys CPU" "$L" replay
rt=$(ms "$t")
bytes=$(du -sb "$data/logs" | cut -f1)
echo "ledger replay: $rt ms for $bytes bytes of files ($(awk -v b="$bytes" -v t="$rt" 'BEGIN {printf "%.0f", b/t/1000}') MB/s)"
t=$(date +%s%N)
dd if=/dev/zero of="$tmp/dd" bs=1M count=$(( bytes / 1048576 )) conv=fdatasync status=none
dt=$(ms "$t")
echo "the disk: dd of as many bytes with fdatasync: $dt ms ($(awk -v b="$bytes" -v t="$dt" 'BEGIN {printf "%.0f", b/t/1000}') MB/s)"
rm -f "$tmp/dd"

echo "--- ledger compact"
answers() {
  "$L" status --at 2025-07-01 --json
  "$L" who 8003 --at 2025-07-01 --json
  "$L" history --port 8003 --newest --limit 100 --json
  "$L" usage --since 2025-12-25 --until 2026-01-01 --json
}
answers >"$tmp/before.json"
t=$(date +%s%N)
"$L" compact
echo "compact took $(ms "$t") ms"
answers >"$tmp/after.json"
if cmp -s "$tmp/before.json" "$tmp/after.json"; then echo "answers before and after compact: the same ($(wc -c <"$tmp/before.json") bytes)"; else echo "answers before and after compact DIFFER"; diff "$tmp/before.json" "$tmp/after.json" | head || true; fi
size1=$(dbsize)
echo "disk after compact: ledger.db $size1 bytes, $(awk -v s="$size1" -v n="$events_total" 'BEGIN {printf "%.1f", s/n}') bytes/event"
