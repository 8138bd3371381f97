// The providers a server can rent machines from, in one table (DESIGN.md, module cloud/). Each
// row names a kind of provider, says in one line what it is, names the `lepton server` flag that
// gives its configuration file, and builds the provider from that file's text. `lepton server`
// and `lepton up` (cli/control_commands.cpp) add one flag per row and build what they are given
// through the row; the server then drives every provider through the Provider interface alone.
//
// Adding a provider: its Provider subclass in a file of its own (say slurm_provider.{h,cpp}), one
// row in provider_table.cpp, and its fixture in provider_contract_test.cpp, the suite every row
// passes (provider_contract_test.cpp fails while a row has no fixture).
//
// Not in the table: the ssh provider (ssh_provider.h), which `lepton ssh` and `lepton node add
// --ssh` drive directly; no server rents from it.
#pragma once

#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "cloud/catalog.h"
#include "cloud/provider.h"
#include "core/status.h"

namespace lepton::cloud {

// What a row's factory is given.
struct ProviderContext {
  // The text of the configuration file (the row's config_flag); empty when only the row's
  // defaults are wanted (for sim: `--demo-clouds` without `--demo-clouds-config`).
  std::string config;
  std::vector<Offer> catalog;  // the offer catalog (catalog.h load_catalog_dir)
  std::string data_dir;        // the server's data directory; a provider keeps its files under it
};

using ProviderFactory = Result<std::shared_ptr<Provider>> (*)(const ProviderContext& context);

struct ProviderKind {
  std::string_view name;         // as Provider::name() answers, e.g. "aws"
  std::string_view description;  // one line, for help and docs
  std::string_view config_flag;  // the `lepton server` flag naming its configuration file
  std::string_view config_help;  // that flag's help
  // Where its machines run, as a message names it ("EC2"); empty: on this machine. Machines
  // elsewhere need a server address they can reach (`lepton server --advertise-url`).
  std::string_view machines_in;
  // Builds the provider. Errors name the field of the configuration that is wrong (without the
  // file's name: the caller adds it).
  ProviderFactory make;
};

// Every row, in the order their flags are listed.
std::span<const ProviderKind> provider_kinds();

// The row named `name`; nullptr when there is none.
const ProviderKind* find_provider_kind(std::string_view name);

}  // namespace lepton::cloud
