// Test helpers: drive the control plane's agent protocol with JSON text, as the REST API does
// (decode with spec/agent_protocol, call, encode the reply), so tests can write messages as JSON.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "server/control_plane.h"
#include "spec/agent_protocol.h"

namespace lepton::server::agent_json {

inline Result<nlohmann::json> register_agent(ControlPlane& cp, const std::string& body,
                                             const std::string& peer, int64_t now_ms) {
  auto message = spec::decode_agent_registration(body);
  if (!message.is_ok()) return message.status();
  auto reply = cp.register_agent(*message, peer, now_ms);
  if (!reply.is_ok()) return reply.status();
  return nlohmann::json::parse(spec::encode(*reply));
}

inline Result<nlohmann::json> heartbeat(ControlPlane& cp, const std::string& node,
                                        const std::string& body, int64_t now_ms) {
  auto message = spec::decode_heartbeat(body);
  if (!message.is_ok()) return message.status();
  auto reply = cp.heartbeat(node, *message, now_ms);
  if (!reply.is_ok()) return reply.status();
  return nlohmann::json::parse(spec::encode(*reply));
}

}  // namespace lepton::server::agent_json
