// The control-plane process: the store, the control loop running ControlPlane, and the REST API.
//
// Threads: HTTP I/O threads parse requests and post each to the control loop, a single thread
// that owns the ControlPlane and also runs its tick every 50 ms; responses are written back by
// the I/O threads. Nothing else touches the ControlPlane.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/status.h"
#include "gateway/gateway.h"
#include "server/control_plane.h"

namespace lepton::server {

struct ServerOptions {
  std::string data_dir;  // holds lepton.db, token, logs/
  std::string address = "127.0.0.1";
  uint16_t port = 8080;  // 0: any free port
  // The gateway to deployments, on `address`: -1 for none, 0 for any free port.
  int gateway_port = 8081;
  gateway::GatewayOptions gateway{};
  ControlPlaneOptions control{};
  // Where machines are rented for work that does not fit (empty: none are).
  std::vector<std::shared_ptr<cloud::Provider>> providers{};
  // The URL rented machines reach this server at ("http://10.0.0.5:8080"); empty: url().
  std::string advertise_url{};
};

// The exit status of a server that stopped because its store failed (a full disk, an I/O
// error): memory had run ahead of the store, so it stops and a restart rebuilds from the store.
inline constexpr int kStoreFailedExitCode = 75;

class Server {
 public:
  // Opens (or creates) the store and the API token under data_dir, and starts serving.
  static Result<std::unique_ptr<Server>> start(ServerOptions options);
  virtual ~Server() = default;
  virtual std::string url() const = 0;          // "http://127.0.0.1:PORT"
  virtual std::string gateway_url() const = 0;  // "" without a gateway
  virtual std::string token() const = 0;        // bearer token for the API
  virtual std::string token_path() const = 0;   // DATA_DIR/token
  virtual void stop() = 0;                      // idempotent
};

// The first-boot script of a rented machine: starts the agent, joined to `server_url`. The agent
// is this binary where the machine has it at the same path (an emulated machine), else `lepton`
// from the machine's PATH (a real one, whose image has lepton installed).
std::string bootstrap_script(const std::string& server_url, const std::string& token,
                             const std::string& agent);
// The path of the running executable.
std::string this_binary();

// Reads the token from DIR/token, creating it (0600, 32 random bytes as hex) when missing.
Result<std::string> load_or_create_token(const std::string& data_dir);

}  // namespace lepton::server
