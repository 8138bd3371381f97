// Provider for machines the user already has ("bring your own"): a pool of hosts reached with the
// system OpenSSH client (`ssh`, from openssh-client). Provisioning a host copies the running
// lepton binary to it and starts `lepton agent` there, detached, so the agent outlives the ssh
// session; terminating stops that agent and the tasks it started, and returns the host to the
// pool. Nothing is installed system-wide on the host and nothing needs root there.
//
// On each host, everything lives under its remote_dir (default ~/.lepton):
//
//   bin/lepton                 the binary, replaced by rename (a running agent keeps its copy)
//   agents/NAME/agent.pid      the agent's pid
//   agents/NAME/agent.log      its stdout and stderr
//   agents/NAME/token          the API token (mode 0600), read by the agent with --token-file
//   agents/NAME/work/          the agent's --work-dir; tasks in work/tasks/ID (agent/executor.h)
//
// provision(), per host:
//   1. `mkdir -p DIR/bin` and the SHA-256 of DIR/bin/lepton (sha256sum, when the host has it);
//   2. when it differs from the local binary's: the binary streamed over ssh's stdin into a
//      temporary file, then renamed onto DIR/bin/lepton. (Not scp: OpenSSH 9's scp needs the
//      host's SFTP subsystem, and `cat` over ssh works on any host with a POSIX shell.)
//   3. a shell script, fed to `sh -s` on the host over stdin, that stops an agent of the same name
//      left from an earlier run (see terminate), checks that `lepton --version` runs there (a
//      binary built for another architecture or missing shared libraries fails here, with the
//      loader's words), clears agents/NAME/work, writes the token file, and starts
//        lepton agent --server URL --token-file agents/NAME/token --name NAME
//                     --work-dir agents/NAME/work [--gpus GPUS]
//      under setsid (nohup where setsid is missing) with stdin from /dev/null and output appended
//      to agent.log, then checks that the agent is still alive a second later.
//   With ProvisionRequest::bootstrap_script set, step 3 runs that script (with /bin/sh, in
//   agents/NAME) instead of the built-in start, after the same stop/clear/token steps, with
//   LEPTON_BIN, LEPTON_SERVER, LEPTON_TOKEN_FILE, LEPTON_NODE_NAME, LEPTON_GPUS (may be empty),
//   LEPTON_AGENT_DIR and LEPTON_WORK_DIR exported. Its contract: start the agent detached (stdin,
//   stdout and stderr away from the session) and write its pid to $LEPTON_AGENT_DIR/agent.pid;
//   a non-zero exit fails the provisioning. The binary is copied in both cases.
//   The returned Instance is kPending: the agent has started, but the server has not necessarily
//   heard from it yet (the caller waits for the node to become ready).
//
// terminate(): over ssh, SIGTERM to the pid in agent.pid when that process is alive and has an
// argument "agent" (a stale pid reused by another process is left alone), SIGKILL after 10 s;
// then SIGTERM to the process group of every task in work/tasks/*/pid (agent/executor.h: the
// wrapper's pid is the group id), SIGKILL to what is left after 10 s. The agent is stopped first
// so that it does not report the tasks' deaths to the server as failures of its own. The logs and
// task directories stay on the host until the next provisioning of that name.
//
// The pool: the configured hosts. Which hosts are in use is kept in STATE_DIR/instances.json
// (with each host's full configuration), so another process with the same state directory (the
// next `lepton node remove`) can list and terminate them; STATE_DIR/instances.lock serialises
// processes. A host is free when no record has its name or its host:port.
//
// Instance ids are node names. offers() gives one Offer per free host: cloud "ssh", instance_type
// the node name, region "USER@HOST:PORT", the declared GPUs (0 GPUs and no model when the agent
// is to discover them), price 0, no spot price; filtered and ordered by find_offers.
// provision() takes the host named by request.offer.instance_type, or, when that is empty, the
// first `count` free hosts whose GPUs fit request.offer's gpu_model/gpu_count (when set).
// interruption_notices() is always empty: nobody takes these machines away.
//
// ssh runs with BatchMode=yes (never a prompt), StrictHostKeyChecking=accept-new with
// UserKnownHostsFile=STATE_DIR/known_hosts (a host's key is learned on first contact and a
// changed key is refused), ConnectTimeout, ServerAlive probes, and IdentitiesOnly=yes with the
// host's identity file. Every ssh run has a hard deadline after which it is killed. Processes are
// spawned with an argv vector (no local shell); every value that reaches the remote shell is
// single-quoted (shell_quote), so the remote login shell must be POSIX-like (sh, bash, dash, zsh).
//
// Errors: bad configuration is kInvalidArgument naming the field; a host that cannot be reached
// (ssh exit 255) or an ssh run past its deadline is kUnavailable (the autoscaler then tries another
// offer); a remote step that fails is kInternal. Each message names the host and carries the
// command's stderr.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "cloud/provider.h"

namespace lepton::cloud::ssh {

struct SshTarget {
  std::string user;
  std::string host;  // a name, an IPv4 address or an IPv6 address (without brackets)
  int port = 22;
};

// "USER@HOST", "USER@HOST:PORT", "USER@[IPV6]" or "USER@[IPV6]:PORT". USER is
// [A-Za-z0-9._-] not starting with '-'; HOST is [A-Za-z0-9.-] not starting with '-' or '.', or
// an IPv6 address in brackets; PORT is 1..65535. Errors name `field` and the part that is wrong.
Result<SshTarget> parse_ssh_target(std::string_view text, std::string_view field = "--ssh");
// "USER@HOST:PORT", with brackets around an IPv6 host.
std::string format_ssh_target(const SshTarget& target);

// `text` as one word for a POSIX shell: in single quotes, each ' written as '\''.
std::string shell_quote(std::string_view text);

struct SshHost {
  SshTarget target;
  std::string identity_file;  // private key (ssh -i); empty: ssh's own defaults
  std::string gpus;           // "MODEL:COUNT", "none", or empty: the agent discovers them (NVML)
  std::string name;           // node name; empty: the host, with ':' turned into '-'
  // Where lepton lives on the host: absolute, or relative to the login directory; "~/" is
  // accepted at the start. Empty: ".lepton" (~/.lepton).
  std::string remote_dir;
};

// Checks a host's fields and fills the defaults (name, remote_dir; gpus canonicalised, e.g.
// "a100-80gb:8" -> "A100-80GB:8"). Errors name the field: "gpus", "name", "remote_dir",
// "identity_file", each prefixed with `field_prefix` (e.g. "--" for CLI flags).
Result<SshHost> normalize_host(SshHost host, std::string_view field_prefix = "");

struct SshProviderOptions {
  std::vector<SshHost> hosts;  // the pool
  std::string state_dir;       // local: known_hosts and the records of hosts in use; created
  std::string lepton_binary;   // local path of the binary copied to hosts
  std::string server_url;      // what the agents join, as the hosts reach it
  std::string token;           // the API token the agents use
  std::chrono::seconds connect_timeout{10};
  std::chrono::seconds command_timeout{60};  // each ssh run but the copy of the binary
  std::chrono::seconds upload_timeout{600};  // the copy of the binary
  std::string ssh_program = "ssh";           // looked up in PATH
  // Called with one line of progress ("gpu1: copying lepton (120 MiB)"); may be empty.
  std::function<void(const std::string&)> progress;
};

class SshProvider final : public Provider {
 public:
  // Checks every host (normalize_host; names and host:port unique), the binary, the server URL and
  // the token, and creates the state directory.
  static Result<std::unique_ptr<SshProvider>> create(SshProviderOptions options);

  std::string_view name() const override { return "ssh"; }
  Result<std::vector<Offer>> offers(const OfferQuery& query) const override;
  Result<std::vector<Instance>> provision(const ProvisionRequest& request) override;
  Status terminate(const std::vector<std::string>& instance_ids) override;
  Result<std::vector<Instance>> list_instances() override;
  Result<std::vector<InterruptionNotice>> interruption_notices() override {
    return std::vector<InterruptionNotice>{};
  }
  bool calls_block() const override { return true; }  // ssh runs, with deadlines

  // The host an instance in use runs on (for messages such as "stopped the agent on ...").
  Result<SshHost> host_of(const std::string& instance_id) const;

 private:
  explicit SshProvider(SshProviderOptions options) : options_(std::move(options)) {}
  SshProviderOptions options_;
};

// The argv of one ssh run of `remote_command` on `host` (exposed for tests).
std::vector<std::string> ssh_argv(const SshProviderOptions& options, const SshHost& host,
                                  const std::string& remote_command);

// Runs `argv` (argv[0] looked up in PATH) with stdin from `stdin_data` (an in-memory file) or,
// when `stdin_path` is set, from that file; captures stdout and stderr (1 MiB each at most).
// Past `timeout` the process group is killed and timed_out is set. spawn_error is set (and
// exit_code is -1) when the program could not be started.
struct ProgramResult {
  int exit_code = -1;  // 128+N when killed by signal N
  bool timed_out = false;
  std::string spawn_error;
  std::string out;
  std::string err;
};
ProgramResult run_program(const std::vector<std::string>& argv, std::string_view stdin_data,
                          const std::string& stdin_path, std::chrono::milliseconds timeout);

}  // namespace lepton::cloud::ssh
