// The web console's files (web/: index.html, console.js, render.js, console.css), built into the
// binary from web/ by web/embed.cmake, so `lepton up` serves the console with nothing beside it.
#pragma once

#include <string_view>
#include <vector>

namespace lepton::server {

struct ConsoleAsset {
  std::string_view path;  // "/index.html"
  std::string_view content_type;
  std::string_view body;
};

const std::vector<ConsoleAsset>& console_assets();

// The asset served at `path` ("/" is index.html); nullptr when there is none.
const ConsoleAsset* find_console_asset(std::string_view path);

}  // namespace lepton::server
