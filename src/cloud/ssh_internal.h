// Private to the ssh provider: the ssh command runner (ssh_run.cpp) and installing and stopping
// the agent on a host (ssh_install.cpp), which the Provider methods (ssh_provider.cpp) use.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>
#include <string_view>

#include "cloud/ssh_provider.h"

namespace lepton::cloud::ssh::internal {

// The last `max` bytes of `s`, trimmed of surrounding white space.
std::string trimmed_tail(const std::string& s, size_t max = 2000);

// One ssh run of `command` on `h`; `what` names the step in errors.
Result<std::string> ssh_run(const SshProviderOptions& o, const SshHost& h, const std::string& what,
                            const std::string& command, std::string_view stdin_data,
                            const std::string& stdin_path, std::chrono::seconds timeout);

// Copies the binary when the host's differs, then starts the agent.
Status start_on_host(const SshProviderOptions& o, const SshHost& h, const std::string& local_sha,
                     const std::string& bootstrap);
// Stops the agent and its tasks on the host.
Status stop_on_host(const SshProviderOptions& o, const SshHost& h);

}  // namespace lepton::cloud::ssh::internal
