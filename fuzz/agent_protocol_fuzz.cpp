// libFuzzer target: the agent protocol's messages are untrusted (any host that holds a token can
// send them). A control plane over an in-memory store, with one node and one running task, is sent
// the fuzzer's bytes as a registration, then as that node's heartbeat, decoded by the protocol's
// codec (spec/agent_protocol.h) as the API does, and as a heartbeat reply as the agent decodes
// it: each is answered with a result or an error, never a crash, and never leaves the control plane
// unable to go on (a tick and a well-formed heartbeat still succeed afterwards).
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "server/control_plane.h"
#include "server/testing/agent_json.h"
#include "store/sqlite_store.h"

namespace {

using lepton::server::ControlPlane;
using nlohmann::json;

std::string data_dir() {
  static const std::string dir = [] {
    const std::string d =
        std::filesystem::temp_directory_path() / ("lepton-fuzz-agent-" + std::to_string(getpid()));
    std::filesystem::create_directories(d);
    return d;
  }();
  return dir;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string body(reinterpret_cast<const char*>(data), size);
  auto store = lepton::store::open_sqlite_store(":memory:");
  if (!store.is_ok()) std::abort();
  auto cp = ControlPlane::open(std::move(*store), {.data_dir = data_dir()}, 1'000'000);
  if (!cp.is_ok()) std::abort();
  const json node = {{"name", "n1"},
                     {"cpu_milli", 8000},
                     {"memory_mib", 8192},
                     {"gpu_count", 1},
                     {"gpu_model", "A100"}};
  if (!lepton::server::agent_json::register_agent(**cp, node.dump(), "127.0.0.1", 1'000'000)
           .is_ok())
    std::abort();
  if (!(*cp)
           ->submit_job(R"({"name":"f","resources":{"cpus":1},"run":"true"})", 1'000'000)
           .is_ok()) {
    std::abort();
  }
  if (!(*cp)->tick(1'000'050).is_ok()) std::abort();
  (void)lepton::server::agent_json::heartbeat(**cp, "n1", "{}", 1'000'100);  // the task is started
  (void)lepton::server::agent_json::register_agent(**cp, body, "127.0.0.1", 1'000'200);
  (void)lepton::server::agent_json::heartbeat(**cp, "n1", body, 1'000'300);
  (void)lepton::spec::decode_heartbeat_reply(body);
  (void)lepton::spec::decode_registration_reply(body);
  if (!(*cp)->tick(1'000'350).is_ok()) std::abort();
  if (!lepton::server::agent_json::heartbeat(**cp, "n1", R"({"tasks":[],"logs":[]})", 1'000'400)
           .is_ok())
    std::abort();
  return 0;
}
