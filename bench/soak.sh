#!/usr/bin/env bash
# Soak run: a real `lepton server` and two agents on 127.0.0.1 under interleaved faults (jobs,
# cancels, connection floods, kill -9 of the server and of an agent, SIGSTOP of the server, and
# episodes of a full data dir when run as root), then an audit: every acknowledged job ran at most
# once per attempt the server recorded, and every job that was not cancelled ran exactly once.
#
# Usage: bench/soak.sh [--minutes M] [--json]   (default 3 minutes; bounded in time and count)
set -euo pipefail
cd "$(dirname "$0")/.."

minutes=3
json=0
while [ $# -gt 0 ]; do
  case "$1" in
    --minutes) minutes="$2"; shift 2 ;;
    --json) json=1; shift ;;
    *) echo "soak: unknown argument $1 (expected --minutes M or --json)" >&2; exit 2 ;;
  esac
done
case "$minutes" in ''|*[!0-9]*) echo "soak: --minutes: expected a whole number" >&2; exit 2 ;; esac

lepton="$PWD/build/lepton"
[ -x "$lepton" ] || { echo "soak: build/lepton not found; run scripts/build first" >&2; exit 2; }

dir=$(mktemp -d /tmp/lepton-soak.XXXXXX)
data="$dir/server"
mkdir -p "$data"
mounted=0
if [ "$(id -u)" -eq 0 ] && mount -t tmpfs -o size=64m tmpfs "$data" 2>/dev/null; then mounted=1; fi
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
url="http://127.0.0.1:$port"
marks="$dir/marks"
touch "$marks"
server_pid=""
agents=()

log() { [ "$json" -eq 1 ] || echo "soak: $*" >&2; }

start_server() {
  "$lepton" server --data-dir "$data" --port "$port" --gateway-port 0 --node-timeout 3 \
    >>"$dir/server.log" 2>&1 &
  server_pid=$!
  for _ in $(seq 100); do
    curl -fsS "$url/healthz" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  log "server did not come up"; tail -5 "$dir/server.log" >&2; return 1
}
start_agent() {
  "$lepton" agent --server "$url" --token-file "$data/token" --name "a$1" --gpus none \
    --cpus 4 --memory 8 --work-dir "$dir/a$1" >>"$dir/agent$1.log" 2>&1 &
  agents[$1]=$!
}
cli() { "$lepton" "$@" --server "$url" --token-file "$data/token"; }
cleanup() {
  kill -CONT "$server_pid" 2>/dev/null || true
  kill -9 "$server_pid" "${agents[@]}" 2>/dev/null || true
  pkill -KILL -f "$dir" 2>/dev/null || true
  [ "$mounted" -eq 1 ] && umount -l "$data" 2>/dev/null
  rm -rf "$dir"
}
trap cleanup EXIT

start_server
start_agent 1
start_agent 2
cat >"$dir/job.yaml" <<EOF
name: soak
max_restarts: 0
resources: {cpus: 0.2, memory: 0.05}
run: echo "\$LEPTON_JOB_ID \$LEPTON_TASK_ATTEMPT" >> $marks; sleep \$((RANDOM % 4))
EOF

acked=0 refused=0 cancels=0 server_kills=0 agent_kills=0 stops=0 floods=0 fulls=0
deadline=$(( $(date +%s) + minutes * 60 ))
round=0
while [ "$(date +%s)" -lt "$deadline" ] && [ $round -lt 100000 ]; do
  round=$((round + 1))
  for _ in 1 2 3 4 5; do
    if id=$(cli job run -f "$dir/job.yaml" 2>/dev/null); then acked=$((acked + 1)); echo "$id" >>"$dir/acked"
    else refused=$((refused + 1)); fi
  done
  case $((RANDOM % 12)) in
    0) kill -9 "$server_pid" 2>/dev/null; wait "$server_pid" 2>/dev/null || true
       server_kills=$((server_kills + 1)); start_server ;;
    1) n=$((RANDOM % 2 + 1)); kill -9 "${agents[$n]}" 2>/dev/null || true
       agent_kills=$((agent_kills + 1)); sleep 1; start_agent "$n" ;;
    2) kill -STOP "$server_pid"; sleep $((RANDOM % 5 + 1)); kill -CONT "$server_pid"
       stops=$((stops + 1)) ;;
    3) python3 - "$port" <<'PY' && floods=$((floods + 1))
import socket, sys, time
conns = []
for _ in range(600):
    try:
        conns.append(socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=2))
    except OSError:
        break
time.sleep(1)
PY
       ;;
    4) if [ "$mounted" -eq 1 ]; then
         dd if=/dev/zero of="$data/fill" bs=1M >/dev/null 2>&1 || true
         sleep 3; rm -f "$data/fill"; fulls=$((fulls + 1))
         kill -0 "$server_pid" 2>/dev/null || start_server   # it fail-stopped: restart it
       fi ;;
    5) victim=$(shuf -n 1 "$dir/acked" 2>/dev/null || true)
       [ -n "$victim" ] && cli job cancel "$victim" >/dev/null 2>&1 && cancels=$((cancels + 1)) ;;
    *) sleep 0.5 ;;
  esac
  kill -0 "$server_pid" 2>/dev/null || start_server
done

log "faults over; waiting for the jobs to end"
for _ in $(seq 600); do
  left=$(cli job ls --json 2>/dev/null | python3 -c '
import json, sys
print(sum(1 for j in json.load(sys.stdin) if j["state"] not in ("SUCCEEDED", "FAILED", "CANCELLED")))' || echo 1)
  [ "$left" = "0" ] && break
  sleep 1
done

cli job ls --json >"$dir/jobs.json"
audit=$(python3 - "$dir/jobs.json" "$marks" "$dir/acked" <<'PY'
import collections, json, sys
jobs = {j["id"]: j for j in json.load(open(sys.argv[1]))}
runs = collections.Counter(line.split()[0] for line in open(sys.argv[2]) if line.strip())
acked = [l.strip() for l in open(sys.argv[3]) if l.strip()]
lost = [i for i in acked if i not in jobs]
twice = [i for i, n in runs.items() if n > 1]
unfinished = [i for i in acked if i in jobs and jobs[i]["state"] not in ("SUCCEEDED", "FAILED", "CANCELLED")]
never = [i for i in acked if i in jobs and jobs[i]["state"] == "SUCCEEDED" and runs[i] == 0]
states = collections.Counter(jobs[i]["state"] for i in acked if i in jobs)
print(json.dumps({"acknowledged": len(acked), "lost": len(lost), "ran_twice": len(twice),
                  "succeeded_never_ran": len(never), "unfinished": len(unfinished),
                  "states": states, "examples_twice": twice[:5], "examples_lost": lost[:5]}))
PY
)
summary=$(python3 -c "
import json, sys
a = json.loads(sys.argv[1])
a.update(minutes=$minutes, refused=$refused, cancels=$cancels, server_kills=$server_kills,
         agent_kills=$agent_kills, server_stops=$stops, floods=$floods, disk_full=$fulls)
print(json.dumps(a))" "$audit")
echo "$summary"
python3 -c "
import json, sys
a = json.loads(sys.argv[1])
sys.exit(0 if a['lost'] == 0 and a['ran_twice'] == 0 and a['succeeded_never_ran'] == 0 else 1)" "$summary"
