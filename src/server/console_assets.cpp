#include "server/console_assets.h"

namespace lepton::server {

const ConsoleAsset* find_console_asset(std::string_view path) {
  if (path == "/") path = "/index.html";
  for (const ConsoleAsset& asset : console_assets()) {
    if (asset.path == path) return &asset;
  }
  return nullptr;
}

}  // namespace lepton::server
