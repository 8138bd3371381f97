#include "cli/cli.h"

#include <unistd.h>

#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>

#include "server/server.h"

namespace lepton::cli {

std::string data_dir() {
  namespace fs = std::filesystem;
  if (const char* env = std::getenv("LEPTON_DATA_DIR"); env && *env) return env;
  for (fs::path dir = fs::path(server::this_binary()).parent_path();
       !dir.empty() && dir != dir.root_path(); dir = dir.parent_path()) {
    if (fs::is_directory(dir / "data" / "traces")) return (dir / "data").string();
  }
  return std::string(LEPTON_SOURCE_DIR) + "/data";
}

std::string default_trace_dir() { return data_dir() + "/traces/alibaba-gpu-v2023"; }

Result<std::vector<uint64_t>> parse_seeds(const std::string& text) {
  auto bad = [&] {
    return Status::invalid_argument("--seeds '" + text +
                                    "': expected a range such as 42..51 or a list such as 42,43");
  };
  auto number = [](std::string_view s, uint64_t& out) {
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    return !s.empty() && ec == std::errc() && p == s.data() + s.size();
  };
  std::vector<uint64_t> seeds;
  std::string_view t = text;
  if (size_t dots = t.find(".."); dots != std::string_view::npos) {
    uint64_t lo = 0, hi = 0;
    if (!number(t.substr(0, dots), lo) || !number(t.substr(dots + 2), hi) || hi < lo ||
        hi - lo >= 10000) {
      return bad();
    }
    for (uint64_t s = lo; s <= hi; ++s) seeds.push_back(s);
    return seeds;
  }
  while (true) {
    size_t comma = t.find(',');
    uint64_t s = 0;
    if (!number(t.substr(0, comma), s)) return bad();
    seeds.push_back(s);
    if (comma == std::string_view::npos) break;
    t = t.substr(comma + 1);
  }
  return seeds;
}

void fail(const std::string& message, int exit_code) {
  std::cerr << "lepton: " << message << "\n";
  throw CLI::RuntimeError(exit_code);
}

void fail(const Status& status) {
  fail(status.message(), status.code() == StatusCode::kInvalidArgument ? 2 : 1);
}

void progress_bar(const std::string& label, size_t done, size_t total) {
  static const bool tty = isatty(STDERR_FILENO) == 1;
  if (!tty || total == 0) return;
  constexpr int kWidth = 30;
  int filled = static_cast<int>(kWidth * done / total);
  std::fprintf(stderr, "\r%-28s [%s%s] %zu/%zu", label.c_str(), std::string(filled, '#').c_str(),
               std::string(kWidth - filled, ' ').c_str(), done, total);
  if (done == total) std::fprintf(stderr, "\n");
  std::fflush(stderr);
}

int run(int argc, char** argv, std::span<const Register> more) {
  CLI::App app{"lepton: one scheduler and one API over GPUs from everywhere"};
  app.name("lepton");
  app.require_subcommand(1);
  app.set_version_flag("--version", "lepton 0.1.0");
  register_control_commands(app);
  register_ssh_commands(app);
  register_queue_commands(app);
  register_deploy_commands(app);
  register_gateway_command(app);
  register_offers_command(app);
  register_cloud_commands(app);
  for (Register add : more) add(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const nlohmann::json::exception& e) {
    // A reply of an unexpected shape (another server, another version): say so, do not crash.
    std::fprintf(stderr, "lepton: the server's reply is not what this lepton expects (%s)\n",
                 e.what());
    return 1;
  }
  return 0;
}

}  // namespace lepton::cli
