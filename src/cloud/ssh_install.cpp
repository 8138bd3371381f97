// Installing and starting the agent on a host, and stopping it: the remote start and stop
// scripts, and copying the lepton binary when the host's differs.
#include <filesystem>

#include "cloud/ssh_internal.h"
#include "cloud/ssh_provider.h"

namespace lepton::cloud::ssh {
namespace {

namespace fs = std::filesystem;

// --- remote scripts ---

// Shell functions shared by the start and stop scripts; they expect $dir (agents/NAME).
constexpr std::string_view kFunctions = R"SH(
alive() {
  read -r s 2>/dev/null < "/proc/$1/stat" || return 1
  s=${s##*) }
  [ "${s%% *}" != Z ]
}
is_agent() {
  tr '\0' '\n' 2>/dev/null < "/proc/$1/cmdline" | grep -qx agent
}
group_alive() {
  g=$1
  for f in /proc/[0-9]*/stat; do
    read -r s 2>/dev/null < "$f" || continue
    s=${s##*) }
    set -- $s
    [ "$1" != Z ] && [ "$3" = "$g" ] && return 0
  done
  return 1
}
wait_gone() {
  i=0
  while "$1" "$2"; do
    [ "$i" -ge "$3" ] && return 1
    sleep 0.1
    i=$((i + 1))
  done
  return 0
}
stop_agent() {
  if [ -f "$dir/agent.pid" ]; then
    pid=
    read -r pid 2>/dev/null < "$dir/agent.pid"
    case $pid in '' | *[!0-9]*) pid= ;; esac
    if [ -n "$pid" ] && alive "$pid" && is_agent "$pid"; then
      kill -s TERM "$pid" 2>/dev/null
      if ! wait_gone alive "$pid" 100; then
        kill -s KILL "$pid" 2>/dev/null
        wait_gone alive "$pid" 50 || { echo "agent pid $pid survived SIGKILL" >&2; return 1; }
      fi
    fi
    rm -f "$dir/agent.pid"
  fi
  groups=
  for f in "$dir"/work/tasks/*/pid; do
    [ -f "$f" ] || continue
    g=
    read -r g 2>/dev/null < "$f"
    case $g in '' | *[!0-9]*) continue ;; esac
    if group_alive "$g"; then
      kill -s TERM -- "-$g" 2>/dev/null
      groups="$groups $g"
    fi
  done
  for g in $groups; do
    if ! wait_gone group_alive "$g" 100; then
      kill -s KILL -- "-$g" 2>/dev/null
      wait_gone group_alive "$g" 50 ||
        { echo "task process group $g survived SIGKILL" >&2; return 1; }
    fi
  done
  return 0
}
)SH";

constexpr std::string_view kStart = R"SH(
mkdir -p "$dir" || exit 1
stop_agent || exit 1
if ! version=$("$bin" --version 2>&1 < /dev/null); then
  echo "$bin does not run on this machine ($(uname -sm)): $version" >&2
  exit 3
fi
rm -rf "$dir/work" "$dir/agent.pid" "$dir/agent.pid.new" || exit 1
mkdir -p "$dir/work" || exit 1
(umask 077 && printf '%s\n' "$token" > "$dir/token") || exit 1
: > "$dir/agent.log"
cd "$dir" || exit 1
if [ -n "$bootstrap" ]; then
  LEPTON_BIN=$bin LEPTON_SERVER=$server LEPTON_TOKEN_FILE=$dir/token LEPTON_NODE_NAME=$name
  LEPTON_GPUS=$gpus LEPTON_AGENT_DIR=$dir LEPTON_WORK_DIR=$dir/work
  export LEPTON_BIN LEPTON_SERVER LEPTON_TOKEN_FILE LEPTON_NODE_NAME LEPTON_GPUS LEPTON_AGENT_DIR
  export LEPTON_WORK_DIR
  sh -c "$bootstrap" < /dev/null || { echo "the bootstrap script failed (exit $?)" >&2; exit 5; }
else
  if command -v setsid > /dev/null 2>&1; then detach=setsid; else detach=nohup; fi
  if [ -n "$gpus" ]; then set -- --gpus "$gpus"; else set --; fi
  $detach sh -c 'echo $$ > "$0.new" && mv -f "$0.new" "$0" && exec "$@"' "$dir/agent.pid" \
    "$bin" agent --server "$server" --token-file "$dir/token" --name "$name" \
    --work-dir "$dir/work" "$@" < /dev/null >> "$dir/agent.log" 2>&1 &
fi
i=0
while [ ! -s "$dir/agent.pid" ] && [ "$i" -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
pid=
read -r pid 2>/dev/null < "$dir/agent.pid"
if [ -z "$pid" ]; then
  echo "no agent pid in $dir/agent.pid 10 s after the start; the end of $dir/agent.log:" >&2
  tail -n 20 "$dir/agent.log" >&2
  exit 4
fi
sleep 1
if ! alive "$pid"; then
  echo "the agent exited at once; the end of $dir/agent.log:" >&2
  tail -n 20 "$dir/agent.log" >&2
  exit 4
fi
echo "pid $pid"
)SH";

constexpr std::string_view kStop = R"SH(
[ -d "$dir" ] || exit 0
stop_agent || exit 1
rm -f "$dir/token"
)SH";

std::string assign(std::string_view var, std::string_view value) {
  return std::string(var) + "=" + shell_quote(value) + "\n";
}

std::string agent_dir(const SshHost& h) { return h.remote_dir + "/agents/" + h.name; }
std::string remote_bin(const SshHost& h) { return h.remote_dir + "/bin/lepton"; }

std::string stop_script(const SshHost& h) {
  return assign("dir", agent_dir(h)) + std::string(kFunctions) + std::string(kStop);
}

std::string start_script(const SshHost& h, const std::string& server, const std::string& token,
                         const std::string& bootstrap) {
  return assign("dir", agent_dir(h)) + assign("bin", remote_bin(h)) + assign("name", h.name) +
         assign("server", server) + assign("token", token) + assign("gpus", h.gpus) +
         assign("bootstrap", bootstrap) + std::string(kFunctions) + std::string(kStart);
}

void report(const SshProviderOptions& o, const SshHost& h, const std::string& line) {
  if (o.progress) o.progress(h.name + ": " + line);
}

}  // namespace

namespace internal {

// Copies the binary when the host's differs, then starts the agent.
Status start_on_host(const SshProviderOptions& o, const SshHost& h, const std::string& local_sha,
                     const std::string& bootstrap) {
  report(o, h, "connecting to " + format_ssh_target(h.target));
  const std::string bin = remote_bin(h);
  auto probe = ssh_run(
      o, h, "checking " + bin,
      "sh -c " + shell_quote("mkdir -p " + shell_quote(h.remote_dir + "/bin") + " && { sha256sum " +
                             shell_quote(bin) + " 2>/dev/null || true; }"),
      "", "", o.command_timeout);
  if (!probe.is_ok()) return probe.status();
  if (probe->substr(0, local_sha.size()) == local_sha) {
    report(o, h, "lepton is up to date at " + bin);
  } else {
    std::error_code ec;
    const auto size = fs::file_size(o.lepton_binary, ec);
    report(o, h, "copying lepton (" + std::to_string(ec ? 0 : size >> 20) + " MiB) to " + bin);
    const std::string tmp = h.remote_dir + "/bin/.lepton." + h.name + ".upload";
    auto copied = ssh_run(
        o, h, "copying lepton to " + bin,
        "sh -c " + shell_quote("cat > " + shell_quote(tmp) + " && chmod 700 " + shell_quote(tmp) +
                               " && mv -f " + shell_quote(tmp) + " " + shell_quote(bin)),
        "", o.lepton_binary, o.upload_timeout);
    if (!copied.is_ok()) return copied.status();
  }
  report(o, h, bootstrap.empty() ? "starting lepton agent" : "running the bootstrap script");
  auto started = ssh_run(o, h, "starting the agent in " + agent_dir(h), "sh -s",
                         start_script(h, o.server_url, o.token, bootstrap), "", o.command_timeout);
  if (!started.is_ok()) return started.status();
  report(o, h,
         "agent started (" + trimmed_tail(*started) + ", log " + agent_dir(h) + "/agent.log)");
  return Status::ok();
}

Status stop_on_host(const SshProviderOptions& o, const SshHost& h) {
  report(o, h, "stopping the agent and its tasks on " + format_ssh_target(h.target));
  auto stopped = ssh_run(o, h, "stopping the agent in " + agent_dir(h), "sh -s", stop_script(h), "",
                         o.command_timeout);
  return stopped.status();
}

}  // namespace internal
}  // namespace lepton::cloud::ssh
