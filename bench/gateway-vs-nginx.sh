#!/usr/bin/env bash
# The gateway against nginx, both in front of the same upstream (build/lepton-test-upstream, GET
# /hello) on loopback, measured with wrk: requests/s, and the latency each proxy adds over going to
# the upstream directly (p50 and p99 of wrk's latency distribution, proxied minus direct).
#
#   bench/gateway-vs-nginx.sh [--json] [--duration 10] [--connections 64] [--wrk-threads 2]
#                             [--workers 1] [--pin]
#
# Both proxies get the same number of workers (--workers: gateway I/O threads, nginx
# worker_processes). nginx: proxy_pass to an upstream block with keepalive, HTTP/1.1 and
# `Connection ""`, access log off, from a config written to a temp dir, in the foreground with its
# own pid and log files (no system service). --pin runs wrk on its own CPUs (one per wrk thread
# where two or more CPUs are left, else CPU 0) and the servers on the others (taskset), so the
# load generator does not steal the proxy's core. wrk and nginx are installed from Debian's
# packages when missing (apt-get, as root).
set -euo pipefail
cd "$(dirname "$0")/.."

json=0 duration=10 connections=64 wrk_threads=2 workers=1 pin=0
while [ $# -gt 0 ]; do
  case "$1" in
    --json) json=1 ;;
    --duration) duration="$2"; shift ;;
    --connections) connections="$2"; shift ;;
    --wrk-threads) wrk_threads="$2"; shift ;;
    --workers) workers="$2"; shift ;;
    --pin) pin=1 ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "gateway-vs-nginx.sh: unknown flag $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

need=()
command -v wrk >/dev/null || need+=(wrk)
[ -x /usr/sbin/nginx ] || command -v nginx >/dev/null || need+=(nginx-light)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing ${need[*]} (Debian packages)" >&2
  if [ "$(id -u)" -eq 0 ]; then
    { apt-get -y install "${need[@]}" || { apt-get update && apt-get -y install "${need[@]}"; }; } >&2
  else
    { sudo apt-get -y install "${need[@]}" || { sudo apt-get update && sudo apt-get -y install "${need[@]}"; }; } >&2
  fi
fi
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)

if [ ! -x build/lepton ] || [ ! -x build/lepton-test-upstream ]; then
  echo "building lepton and lepton-test-upstream" >&2
  [ -f build/build.ninja ] || cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >&2
  ninja -C build lepton lepton-test-upstream >&2
fi

tmp=$(mktemp -d /tmp/lepton-gw-bench.XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT

free_port() {
  local p
  for _ in $(seq 1 100); do
    p=$((20000 + RANDOM % 40000))
    (: </dev/tcp/127.0.0.1/$p) 2>/dev/null || { echo "$p"; return; }
  done
  echo "no free port" >&2; exit 1
}
wait_http() {  # PORT PATH: polls for up to 10 s until it answers 200
  for _ in $(seq 1 100); do
    if { exec 3<>/dev/tcp/127.0.0.1/"$1"; } 2>/dev/null; then
      printf 'GET %s HTTP/1.0\r\n\r\n' "$2" >&3
      if head -c 12 <&3 | grep -q "200"; then exec 3>&-; return 0; fi
      exec 3>&-
    fi
    sleep 0.1
  done
  echo "nothing answered on port $1" >&2; exit 1
}

servers=() load=()
if [ "$pin" -eq 1 ] && [ "$(nproc)" -ge 2 ]; then
  # wrk gets a CPU per thread when two or more are left for the servers, else CPU 0.
  wrk_cpus=1
  [ "$(nproc)" -ge $((wrk_threads + 2)) ] && wrk_cpus=$wrk_threads
  servers=(taskset -c "$wrk_cpus-$(($(nproc) - 1))")
  load=(taskset -c "0-$((wrk_cpus - 1))")
fi

up_port=$(free_port)
"${servers[@]}" build/lepton-test-upstream --port "$up_port" --threads "$workers" --id bench \
  >"$tmp/upstream.log" 2>&1 &
pids+=($!)
wait_http "$up_port" /hello

gw_port=$(free_port)
printf '{"up": ["127.0.0.1:%s"]}\n' "$up_port" >"$tmp/routes.json"
"${servers[@]}" build/lepton gateway --port "$gw_port" --routes "$tmp/routes.json" \
  --threads "$workers" >"$tmp/gateway.log" 2>&1 &
pids+=($!)
wait_http "$gw_port" /d/up/hello

ng_port=$(free_port)
mkdir -p "$tmp/nginx"
cat >"$tmp/nginx/nginx.conf" <<CONF
worker_processes $workers;
daemon off;
pid $tmp/nginx/nginx.pid;
error_log $tmp/nginx/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $tmp/nginx/body;
  proxy_temp_path $tmp/nginx/proxy;
  fastcgi_temp_path $tmp/nginx/fastcgi;
  uwsgi_temp_path $tmp/nginx/uwsgi;
  scgi_temp_path $tmp/nginx/scgi;
  upstream up { server 127.0.0.1:$up_port; keepalive 256; }
  server {
    listen 127.0.0.1:$ng_port;
    location / {
      proxy_pass http://up;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
CONF
"${servers[@]}" "$nginx_bin" -p "$tmp/nginx" -c "$tmp/nginx/nginx.conf" >"$tmp/nginx/stdout.log" 2>&1 &
pids+=($!)
wait_http "$ng_port" /hello

cat >"$tmp/report.lua" <<'LUA'
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %d %d %d %d %d %d\n", summary.requests, summary.duration,
    e.connect + e.read + e.write + e.status + e.timeout,
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9)))
end
LUA

# run NAME URL [CONNECTIONS THREADS SECONDS]: a 2 s warm-up, then the measured run; sets
# NAME_{rps,p50,p99,p999,errors}.
run() {
  local name=$1 url=$2 c=${3:-$connections} t=${4:-$wrk_threads} d=${5:-$duration} line
  "${load[@]}" wrk -t"$t" -c"$c" -d2s "$url" >/dev/null
  line=$("${load[@]}" wrk -t"$t" -c"$c" -d"${d}s" --latency \
    -s "$tmp/report.lua" "$url" | grep '^RESULT')
  read -r _ reqs dur errs p50 p99 p999 <<<"$line"
  printf -v "${name}_rps" '%s' "$(awk -v r="$reqs" -v d="$dur" 'BEGIN { printf "%.0f", r / (d / 1e6) }')"
  printf -v "${name}_p50" '%s' "$p50"
  printf -v "${name}_p99" '%s' "$p99"
  printf -v "${name}_p999" '%s' "$p999"
  printf -v "${name}_errors" '%s' "$errs"
}
echo "wrk: ${duration}s, $connections connections, $wrk_threads threads; workers: $workers" >&2
run direct "http://127.0.0.1:$up_port/hello"
run gateway "http://127.0.0.1:$gw_port/d/up/hello"
run nginx "http://127.0.0.1:$ng_port/hello"
# Light load (one connection): the latency each proxy adds per request, without queueing.
light=$((duration < 5 ? duration : 5))
run direct1 "http://127.0.0.1:$up_port/hello" 1 1 "$light"
run gateway1 "http://127.0.0.1:$gw_port/d/up/hello" 1 1 "$light"
run nginx1 "http://127.0.0.1:$ng_port/hello" 1 1 "$light"

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) print "null"; else printf "%.3f", a / b }'; }
added() { echo $(($1 - $2)); }
gateway_added_p50=$(added "$gateway_p50" "$direct_p50")
nginx_added_p50=$(added "$nginx_p50" "$direct_p50")
gateway_added_p99=$(added "$gateway_p99" "$direct_p99")
nginx_added_p99=$(added "$nginx_p99" "$direct_p99")

if [ "$json" -eq 1 ]; then
  printf '{"gateway_rps": %s, "nginx_rps": %s, "direct_rps": %s, ' \
    "$gateway_rps" "$nginx_rps" "$direct_rps"
  printf '"gateway_added_p50_us": %s, "nginx_added_p50_us": %s, ' \
    "$gateway_added_p50" "$nginx_added_p50"
  printf '"gateway_added_p99_us": %s, "nginx_added_p99_us": %s, ' \
    "$gateway_added_p99" "$nginx_added_p99"
  printf '"direct_p50_us": %s, "gateway_p50_us": %s, "nginx_p50_us": %s, ' \
    "$direct_p50" "$gateway_p50" "$nginx_p50"
  printf '"direct_p99_us": %s, "gateway_p99_us": %s, "nginx_p99_us": %s, ' \
    "$direct_p99" "$gateway_p99" "$nginx_p99"
  printf '"light_load": {"connections": 1, "direct_p50_us": %s, "gateway_added_p50_us": %s, ' \
    "$direct1_p50" "$(added "$gateway1_p50" "$direct1_p50")"
  printf '"nginx_added_p50_us": %s, "gateway_added_p99_us": %s, "nginx_added_p99_us": %s, ' \
    "$(added "$nginx1_p50" "$direct1_p50")" "$(added "$gateway1_p99" "$direct1_p99")" \
    "$(added "$nginx1_p99" "$direct1_p99")"
  printf '"gateway_rps": %s, "nginx_rps": %s}, ' "$gateway1_rps" "$nginx1_rps"
  printf '"rps_ratio_gateway_to_nginx": %s, "added_p50_ratio_gateway_to_nginx": %s, ' \
    "$(ratio "$gateway_rps" "$nginx_rps")" "$(ratio "$gateway_added_p50" "$nginx_added_p50")"
  printf '"errors": {"direct": %s, "gateway": %s, "nginx": %s}, ' \
    "$direct_errors" "$gateway_errors" "$nginx_errors"
  printf '"duration_s": %s, "connections": %s, "wrk_threads": %s, "workers": %s, "pinned": %s, ' \
    "$duration" "$connections" "$wrk_threads" "$workers" "$([ "$pin" -eq 1 ] && echo true || echo false)"
  printf '"cpus": %s}\n' "$(nproc)"
else
  printf '%-10s %12s %14s %14s %12s %8s\n' target req/s p50_us p99_us added_p50 errors
  printf '%-10s %12s %14s %14s %12s %8s\n' direct "$direct_rps" "$direct_p50" "$direct_p99" - "$direct_errors"
  printf '%-10s %12s %14s %14s %12s %8s\n' gateway "$gateway_rps" "$gateway_p50" "$gateway_p99" "$gateway_added_p50" "$gateway_errors"
  printf '%-10s %12s %14s %14s %12s %8s\n' nginx "$nginx_rps" "$nginx_p50" "$nginx_p99" "$nginx_added_p50" "$nginx_errors"
  echo "gateway/nginx req/s: $(ratio "$gateway_rps" "$nginx_rps")"
  echo "one connection: added p50 gateway $(added "$gateway1_p50" "$direct1_p50") us," \
    "nginx $(added "$nginx1_p50" "$direct1_p50") us (direct p50 $direct1_p50 us)"
fi
