// `lepton offers`: GPU machines the clouds sell, cheapest first, from the bundled offer catalog
// (data/catalog/, SkyPilot format; see docs/clouds.md). Read-only: nothing is provisioned.
#include <charconv>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "cli/cli.h"
#include "cloud/catalog.h"

namespace lepton::cli {
namespace {

using nlohmann::json;

struct OffersFlags {
  std::string gpu;
  bool spot = false;
  std::string clouds;
  std::string regions;
  std::string catalog;
  std::string limit = "20";
  bool json = false;
};

std::vector<std::string> split_list(const std::string& text) {
  std::vector<std::string> items;
  std::string_view t = text;
  while (!t.empty()) {
    size_t comma = t.find(',');
    if (comma != 0) items.emplace_back(t.substr(0, comma));
    if (comma == std::string_view::npos) break;
    t = t.substr(comma + 1);
  }
  return items;
}

std::string cloud_names() {
  std::string names;
  for (std::string_view file : cloud::kCatalogFiles) {
    if (!names.empty()) names += ", ";
    names += file.substr(0, file.find('_'));
  }
  return names;
}

std::string format_number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

// Rounds to micro-dollars so JSON shows 5.383269, not 5.383268999999999.
double round_micro(double v) { return std::round(v * 1e6) / 1e6; }

void run_offers(const OffersFlags& f) {
  cloud::OfferQuery query;
  if (!f.gpu.empty()) {
    auto q = cloud::parse_gpu_query(f.gpu);
    if (!q.is_ok()) fail("--gpu " + q.status().message(), 2);
    query = std::move(*q);
  }
  query.spot = f.spot;
  query.clouds = split_list(f.clouds);
  for (const std::string& c : query.clouds) {
    bool known = false;
    for (std::string_view file : cloud::kCatalogFiles) known |= file.substr(0, file.find('_')) == c;
    if (!known) fail("--cloud '" + c + "': expected one or more of " + cloud_names(), 2);
  }
  query.regions = split_list(f.regions);
  size_t limit = 0;
  auto [end, ec] = std::from_chars(f.limit.data(), f.limit.data() + f.limit.size(), limit);
  if (f.limit.empty() || ec != std::errc() || end != f.limit.data() + f.limit.size()) {
    fail("--limit '" + f.limit + "': expected a whole number >= 0 (0: all)", 2);
  }
  const std::string dir = f.catalog.empty() ? data_dir() + "/catalog" : f.catalog;
  auto all = cloud::load_catalog_dir(dir);
  if (!all.is_ok()) fail("--catalog " + dir + ": " + all.status().message(), 2);

  if (!query.gpu_model.empty()) {
    cloud::OfferQuery model_only;
    model_only.gpu_model = query.gpu_model;
    if (cloud::find_offers(*all, model_only).empty()) {
      std::set<std::string> models;
      for (const cloud::Offer& o : *all) models.insert(o.gpu_model);
      std::string list;
      for (const std::string& m : models) list += (list.empty() ? "" : ", ") + m;
      fail("--gpu '" + f.gpu + "': no cloud in the catalog offers GPU model '" + query.gpu_model +
               "'; known models: " + list,
           2);
    }
  }

  std::vector<cloud::Offer> found = cloud::find_offers(*all, query);
  const size_t total = found.size();
  if (limit > 0 && found.size() > limit) found.resize(limit);

  auto price = [&](const cloud::Offer& o) {
    return f.spot ? *o.spot_price_per_hour : o.price_per_hour;
  };
  if (f.json) {
    json out = json::array();
    for (const cloud::Offer& o : found) {
      out.push_back({{"cloud", o.cloud},
                     {"instance_type", o.instance_type},
                     {"gpu_model", o.gpu_model},
                     {"gpus", o.gpu_count},
                     {"vcpus", o.vcpus},
                     {"memory_gib", o.memory_gib},
                     {"region", o.region},
                     {"zone", o.zone},
                     {"spot", f.spot},
                     {"price_per_hour", price(o)},
                     {"price_per_gpu_hour", round_micro(cloud::price_per_gpu_hour(o, f.spot))},
                     {"on_demand_price_per_hour", o.price_per_hour},
                     {"spot_price_per_hour",
                      o.spot_price_per_hour ? json(*o.spot_price_per_hour) : json(nullptr)}});
    }
    std::cout << out.dump(2) << "\n";
    return;
  }
  if (found.empty()) {
    std::cerr << "lepton: no offers match\n";
    return;
  }
  std::printf("%-8s %-34s %-14s %6s %8s  %-30s %9s %9s\n", "CLOUD", "INSTANCE", "GPUS", "vCPU",
              "MEM GiB", "REGION (zone)", "$/h", "$/GPU-h");
  for (const cloud::Offer& o : found) {
    std::string gpus = format_number(o.gpu_count) + "x " + o.gpu_model;
    std::string where = o.zone.empty() ? o.region : o.region + " (" + o.zone + ")";
    std::string vcpus = o.vcpus > 0 ? format_number(o.vcpus) : "-";
    std::string mem = o.memory_gib > 0 ? format_number(o.memory_gib) : "-";
    std::printf("%-8s %-34s %-14s %6s %8s  %-30s %9.3f %9.3f\n", o.cloud.c_str(),
                o.instance_type.c_str(), gpus.c_str(), vcpus.c_str(), mem.c_str(), where.c_str(),
                price(o), cloud::price_per_gpu_hour(o, f.spot));
  }
  if (found.size() < total) {
    std::printf("(%zu of %zu offers; --limit 0 shows all)\n", found.size(), total);
  }
}

}  // namespace

void register_offers_command(CLI::App& app) {
  auto flags = std::make_shared<OffersFlags>();
  CLI::App* offers = app.add_subcommand(
      "offers",
      "GPU machines the clouds sell, cheapest first, from the bundled price catalog (list "
      "prices; nothing is provisioned)");
  offers->add_option("--gpu", flags->gpu,
                     "GPU model and exact count, e.g. H100:8 or A100 (any count)");
  offers->add_flag("--spot", flags->spot, "Only offers with a spot price, priced by it");
  offers->add_option("--cloud", flags->clouds,
                     "Comma-separated clouds: aws, gcp, azure, lambda, runpod (default: all)");
  offers->add_option("--region", flags->regions, "Comma-separated regions or zones (default: all)");
  offers->add_option("--catalog", flags->catalog,
                     "Catalog folder (default: the bundled data/catalog)");
  offers->add_option("--limit", flags->limit, "Show at most this many offers (0: all)")
      ->capture_default_str();
  offers->add_flag("--json", flags->json, "Print a JSON array of offers");
  offers->callback([flags] { run_offers(*flags); });
}

}  // namespace lepton::cli
