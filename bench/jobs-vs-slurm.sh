#!/usr/bin/env bash
# Trivial-job throughput, lepton against Slurm, on this machine and in one run.
#
# Submits N jobs that run `true`, one `submit` call after another, to a private `lepton up`
# and to a private one-node Slurm cluster (slurmctld + slurmd + munged, all under a temp dir,
# nothing system-wide is touched or started), and reports for each the sequential submission
# rate and the end-to-end rate: N / (first submit -> last job seen finished).
#
# Usage: bench/jobs-vs-slurm.sh [--json] [--jobs N] [--lepton BIN] [--timeout S] [--poll S]
#   --json      print one JSON object on stdout instead of a table
#   --jobs N    jobs per system (default 500)
#   --lepton B  lepton binary (default build/lepton in the repo, built with scripts/build)
#   --timeout S give up on a system's run after S seconds (default 120 + 2 per job)
#   --poll S    completion polling interval, the same for both systems (default 0.2)
# Progress goes to stderr. Needs root and apt (Debian 12) to install Slurm and munge if missing.
#
# Fairness. lepton's jobs ask for 0.1 CPU, so up to 10 per core (20 on 2 cores) run at once.
# Slurm with select/cons_tres + CR_Core gives each job a whole CPU, so its node is declared with
# CPUs = 10 x nproc (SlurmdParameters=config_overrides keeps slurmd from draining it for having
# fewer), which allows the same number of concurrent 1-CPU jobs. Both get the same jobs (`true`, output
# discarded), the same sequential submission from this shell, the same polling interval, and
# their default scheduler settings otherwise (Slurm: sched/backfill, no accounting, no cgroups).
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
jobs=500
json=0
bin=""
timeout_s=""
poll=0.2
usage() {
  echo "usage: $0 [--json] [--jobs N] [--lepton BIN] [--timeout SECONDS] [--poll SECONDS]" >&2
  exit 2
}
while [ $# -gt 0 ]; do
  case "$1" in
    --json) json=1; shift ;;
    --jobs) [ $# -ge 2 ] || usage; jobs="$2"; shift 2 ;;
    --lepton) [ $# -ge 2 ] || usage; bin="$2"; shift 2 ;;
    --timeout) [ $# -ge 2 ] || usage; timeout_s="$2"; shift 2 ;;
    --poll) [ $# -ge 2 ] || usage; poll="$2"; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' >&2; exit 0 ;;
    *) usage ;;
  esac
done
[[ "$jobs" =~ ^[1-9][0-9]*$ ]] || { echo "--jobs must be a positive integer" >&2; exit 2; }
[[ "$poll" =~ ^[0-9]*\.?[0-9]+$ ]] || { echo "--poll must be a number of seconds" >&2; exit 2; }
[ -n "$timeout_s" ] || timeout_s=$((120 + 2 * jobs))
[[ "$timeout_s" =~ ^[1-9][0-9]*$ ]] || { echo "--timeout must be a positive integer" >&2; exit 2; }

log() { echo "[jobs-vs-slurm] $*" >&2; }
die() { log "error: $*"; exit 1; }
now() { echo "$EPOCHREALTIME"; }
# elapsed START END -> seconds with 3 decimals; rate N SECONDS -> per second with 1 decimal
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.3f", b - a}'; }
rate() { awk -v n="$1" -v s="$2" 'BEGIN{if (s > 0) printf "%.1f", n / s; else print "null"}'; }
# deadline SECONDS -> epoch second after which a wait gives up
deadline() { echo $(( ${EPOCHREALTIME%.*} + $1 )); }
past() { [ "${EPOCHREALTIME%.*}" -ge "$1" ]; }
# count ERE: matches of ERE on stdin (0 when none, without failing under pipefail)
count() { { grep -oE "$1" || true; } | wc -l; }

[ "$(id -u)" -eq 0 ] || die "run as root (Slurm's daemons run as SlurmUser=root here)"

# ---- lepton binary --------------------------------------------------------------------------
if [ -n "$bin" ]; then
  case "$bin" in /*) ;; *) bin="$PWD/$bin" ;; esac
  [ -x "$bin" ] || die "no executable lepton at $bin"
else
  bin="$repo/build/lepton"
  if [ ! -x "$bin" ]; then
    log "building lepton (scripts/build build)"
    (cd "$repo" && scripts/build build) >&2 || die "build failed"
    [ -x "$bin" ] || die "build did not produce $bin"
  fi
fi

# ---- Slurm and munge from Debian ------------------------------------------------------------
export PATH="$PATH:/usr/sbin:/sbin"
need=()
for pair in slurmctld:slurmctld slurmd:slurmd sbatch:slurm-client munged:munge; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || need+=("${pair#*:}")
done
if [ ${#need[@]} -gt 0 ]; then
  log "installing ${need[*]} with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  timeout 300 apt-get update -qq >&2 || die "apt-get update failed"
  timeout 600 apt-get install -y -qq --no-install-recommends "${need[@]}" >&2 \
    || die "apt-get install ${need[*]} failed"
fi
for c in slurmctld slurmd sbatch squeue sinfo scancel munged mungekey; do
  command -v "$c" >/dev/null || die "$c not found after installing Slurm and munge"
done

# ---- cleanup --------------------------------------------------------------------------------
tmp=$(mktemp -d /tmp/jobs-vs-slurm.XXXXXX)
pids=()   # daemons we started, stopped in reverse order
slurm_up=0
stop_pid() {  # TERM, wait up to 10 s, then KILL
  local p=$1 i
  kill -0 "$p" 2>/dev/null || return 0
  kill "$p" 2>/dev/null || true
  for ((i = 0; i < 100; i++)); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$p" 2>/dev/null; then kill -9 "$p" 2>/dev/null || true; fi
  wait "$p" 2>/dev/null || true
}
cleanup() {
  local rc=$? i
  trap - EXIT INT TERM
  if [ "$slurm_up" = 1 ]; then timeout 10 scancel --quiet --user=root >/dev/null 2>&1 || true; fi
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do stop_pid "${pids[$i]}"; done
  if [ "$rc" -ne 0 ] && [ "${KEEP_LOGS:-0}" = 1 ]; then
    log "kept logs in $tmp"
  else
    rm -rf "$tmp"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

free_port() {  # a TCP port nothing on this machine listens on; bounded tries
  local p i used
  used=$(ss -Htan 2>/dev/null | awk '{n=split($4,a,":"); print a[n]}' | sort -u)
  for ((i = 0; i < 200; i++)); do
    p=$((20000 + RANDOM % 40000))
    grep -qx "$p" <<<"$used" || { echo "$p"; return 0; }
  done
  return 1
}

# ---- lepton run -----------------------------------------------------------------------------
lepton_version=$("$bin" --version 2>/dev/null | awk '{print $NF}')
ldir="$tmp/lepton"
mkdir -p "$ldir"
printf 'name: bench\nresources: {cpus: 0.1, memory: 0.05}\nrun: "true"\n' >"$ldir/spec.yaml"
log "lepton $lepton_version: starting 'lepton up' in $ldir"
"$bin" up --data-dir "$ldir/data" --address 127.0.0.1 --port 0 --gpus none --name bench \
  >"$ldir/up.log" 2>&1 &
pids+=($!)
lpid=$!
server=""
until_t=$(deadline 30)
until [ -n "$server" ]; do
  kill -0 "$lpid" 2>/dev/null || { cat "$ldir/up.log" >&2; die "lepton up exited"; }
  past "$until_t" && die "lepton up did not report its address in 30 s"
  server=$(sed -nE 's|^lepton is up at (http://[^ ]+).*|\1|p' "$ldir/up.log" | head -n1)
  [ -n "$server" ] || sleep 0.1
done
token="$ldir/data/token"
lep() { "$bin" "$@" --server "$server" --token-file "$token"; }
until_t=$(deadline 30)
until lep node ls --json 2>/dev/null | grep -q '"ready":true'; do
  past "$until_t" && die "lepton's node not ready in 30 s"
  sleep 0.1
done

log "lepton: submitting $jobs jobs"
l_t0=$(now)
for ((i = 0; i < jobs; i++)); do
  lep job run -f "$ldir/spec.yaml" >/dev/null || die "lepton job run failed at job $((i + 1))"
done
l_t1=$(now)
log "lepton: submitted in $(elapsed "$l_t0" "$l_t1") s; waiting for completion"
until_t=$(deadline "$timeout_s")
while :; do
  out=$(lep job ls --json) || die "lepton job ls failed"
  total=$(count '"state":"[A-Z]+"' <<<"$out")
  ok=$(count '"state":"SUCCEEDED"' <<<"$out")
  bad=$(count '"state":"(FAILED|CANCELLED)"' <<<"$out")
  [ "$bad" -eq 0 ] || die "lepton: $bad jobs failed or were cancelled"
  if [ "$ok" -ge "$jobs" ]; then l_t2=$(now); break; fi
  past "$until_t" && die "lepton: only $ok of $jobs jobs succeeded in $timeout_s s"
  sleep "$poll"
done
if [ "$total" -ne "$jobs" ] || [ "$ok" -ne "$jobs" ]; then
  die "lepton: expected $jobs jobs, saw $total ($ok succeeded)"
fi
log "lepton: all $jobs succeeded $(elapsed "$l_t0" "$l_t2") s after the first submit"
stop_pid "$lpid"
pids=()

# ---- Slurm run ------------------------------------------------------------------------------
sdir="$tmp/slurm"
mkdir -p "$sdir/state" "$sdir/spool"
chmod 755 "$tmp" "$sdir"   # munged wants every directory above its socket searchable by all
host=$(hostname -s)
cpus=$(nproc)
slots=$((10 * cpus))   # as many concurrent jobs as lepton's 0.1-CPU jobs get
cport=$(free_port) || die "no free port"
dport=$(free_port) || die "no free port"
[ "$cport" != "$dport" ] || dport=$((cport + 1))
mungekey -c -b 1024 -k "$sdir/munge.key" || die "mungekey failed"
munged -F --socket="$sdir/munge.sock" --key-file="$sdir/munge.key" --pid-file="$sdir/munged.pid" \
  --log-file="$sdir/munged.log" --seed-file="$sdir/munged.seed" >"$sdir/munged.out" 2>&1 &
pids+=($!)
until_t=$(deadline 15)
until [ -S "$sdir/munge.sock" ]; do
  kill -0 "${pids[-1]}" 2>/dev/null || { cat "$sdir/munged.out" >&2; die "munged exited"; }
  past "$until_t" && die "munged did not create its socket in 15 s"
  sleep 0.1
done
: >"$sdir/plugstack.conf"
conf="$sdir/slurm.conf"
cat >"$conf" <<EOF
# Private one-node cluster for bench/jobs-vs-slurm.sh
ClusterName=leptonbench
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$cport
SlurmdPort=$dport
AuthType=auth/munge
AuthInfo=socket=$sdir/munge.sock
CredType=cred/munge
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$sdir/state
SlurmdSpoolDir=$sdir/spool
SlurmctldPidFile=$sdir/slurmctld.pid
SlurmdPidFile=$sdir/slurmd.pid
SlurmctldLogFile=$sdir/slurmctld.log
SlurmdLogFile=$sdir/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
PlugStackConfig=$sdir/plugstack.conf
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MpiDefault=none
# keep finished jobs visible to squeue long enough to check how they ended
MinJobAge=3600
# $slots one-CPU slots on this node, as lepton fits $slots jobs of 0.1 CPU on $cpus cores
SlurmdParameters=config_overrides
NodeName=$host NodeAddr=127.0.0.1 CPUs=$slots RealMemory=1000 State=UNKNOWN
PartitionName=bench Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
export SLURM_CONF="$conf"
slurm_version=$(sbatch --version | awk '{print $NF}')
log "slurm $slurm_version: starting slurmctld (port $cport) and slurmd (port $dport) in $sdir"
slurmctld -D -f "$conf" >"$sdir/slurmctld.out" 2>&1 &
pids+=($!)
slurmd -D -f "$conf" -N "$host" >"$sdir/slurmd.out" 2>&1 &
pids+=($!)
slurm_up=1
until_t=$(deadline 60)
until [ "$(timeout 5 sinfo -h -N -o '%t' 2>/dev/null | head -n1)" = idle ]; do
  for p in "${pids[@]: -2}"; do
    kill -0 "$p" 2>/dev/null || {
      tail -n 20 "$sdir"/slurmctld.log "$sdir"/slurmd.log "$sdir"/*.out >&2 2>/dev/null
      die "a Slurm daemon exited"
    }
  done
  if past "$until_t"; then
    tail -n 20 "$sdir"/slurmctld.log "$sdir"/slurmd.log >&2 2>/dev/null
    die "Slurm's node not idle in 60 s: $(timeout 5 sinfo -h -N -o '%t %E' 2>&1)"
  fi
  sleep 0.2
done

log "slurm: submitting $jobs jobs"
cd "$sdir"
s_t0=$(now)
for ((i = 0; i < jobs; i++)); do
  sbatch --parsable --quiet -o /dev/null -e /dev/null -J bench --wrap true >/dev/null \
    || die "sbatch failed at job $((i + 1))"
done
s_t1=$(now)
log "slurm: submitted in $(elapsed "$s_t0" "$s_t1") s; waiting for completion"
until_t=$(deadline "$timeout_s")
while :; do
  left=$(squeue -h -o %i) || die "squeue failed"
  if [ -z "$left" ]; then s_t2=$(now); break; fi
  past "$until_t" && die "slurm: $(wc -l <<<"$left") jobs still queued after $timeout_s s"
  sleep "$poll"
done
states=$(squeue -h -t all -o %T)
total=$(count '^.+$' <<<"$states")
ok=$(count '^COMPLETED$' <<<"$states")
if [ "$total" -ne "$jobs" ] || [ "$ok" -ne "$jobs" ]; then
  die "slurm: expected $jobs completed jobs, saw $total: $(sort <<<"$states" | uniq -c | tr '\n' ' ')"
fi
log "slurm: all $jobs completed $(elapsed "$s_t0" "$s_t2") s after the first submit"
cd "$repo"

# ---- report ---------------------------------------------------------------------------------
l_sec=$(elapsed "$l_t0" "$l_t2"); s_sec=$(elapsed "$s_t0" "$s_t2")
l_sub=$(elapsed "$l_t0" "$l_t1"); s_sub=$(elapsed "$s_t0" "$s_t1")
l_rate=$(rate "$jobs" "$l_sec"); s_rate=$(rate "$jobs" "$s_sec")
l_srate=$(rate "$jobs" "$l_sub"); s_srate=$(rate "$jobs" "$s_sub")
ratio=$(awk -v a="$l_rate" -v b="$s_rate" 'BEGIN{if (b > 0) printf "%.2f", a / b; else print "null"}')
notes="one sequential submit call per job from this shell; end to end is first submit to last completion seen by polling every ${poll} s; lepton jobs ask for 0.1 CPU (${slots} at once on ${cpus} cores), Slurm's node is declared CPUs=${slots} (config_overrides) so ${slots} one-CPU jobs run at once; Slurm 1 node, sched/backfill, select/cons_tres CR_Core, proctrack/linuxproc, task/none, no accounting; both on the same ${cpus}-CPU machine in one run"
if [ "$json" = 1 ]; then
  printf '{"jobs":%s,"lepton_jobs_per_s":%s,"slurm_jobs_per_s":%s,"ratio":%s,' \
    "$jobs" "$l_rate" "$s_rate" "$ratio"
  printf '"lepton_seconds":%s,"slurm_seconds":%s,' "$l_sec" "$s_sec"
  printf '"lepton_submit_seconds":%s,"slurm_submit_seconds":%s,' "$l_sub" "$s_sub"
  printf '"lepton_submit_per_s":%s,"slurm_submit_per_s":%s,' "$l_srate" "$s_srate"
  printf '"lepton_version":"%s","slurm_version":"%s","cpus":%s,"poll_s":%s,"notes":"%s"}\n' \
    "$lepton_version" "$slurm_version" "$cpus" "$poll" "$notes"
else
  printf '%d trivial jobs on %d CPUs (lepton %s, Slurm %s)\n' "$jobs" "$cpus" "$lepton_version" "$slurm_version"
  printf '%-8s %12s %14s %12s %12s\n' system submit/s submit_s end_to_end_s jobs/s
  printf '%-8s %12s %14s %12s %12s\n' lepton "$l_srate" "$l_sub" "$l_sec" "$l_rate"
  printf '%-8s %12s %14s %12s %12s\n' slurm "$s_srate" "$s_sub" "$s_sec" "$s_rate"
  printf 'lepton/slurm end to end: %sx\n' "$ratio"
  printf 'notes: %s\n' "$notes"
fi
