#include "cloud/catalog.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <fstream>
#include <map>
#include <sstream>
#include <tuple>

#include "core/csv.h"
#include "core/gpu_model.h"

namespace lepton::cloud {
namespace {

// ---- Columns and fields ----------------------------------------------------------------------

enum Col { kInstance, kAccel, kCount, kVcpus, kMemory, kPrice, kSpot, kRegion, kZone, kNumCols };
constexpr std::string_view kColNames[kNumCols] = {
    "InstanceType", "AcceleratorName", "AcceleratorCount", "vCPUs",           "MemoryGiB",
    "Price",        "SpotPrice",       "Region",           "AvailabilityZone"};
constexpr size_t kAbsent = static_cast<size_t>(-1);

class Row {
 public:
  Row(const CsvReader& csv, const std::vector<CsvField>& fields, const size_t (&index)[kNumCols])
      : csv_(csv), fields_(fields), index_(index) {}

  bool has(Col c) const { return index_[c] != kAbsent; }
  const std::string& text(Col c) const {
    static const std::string kEmpty;
    return has(c) ? fields_[index_[c]].text : kEmpty;
  }
  Status error(Col c, std::string_view expected) const {
    const CsvField& f = fields_[index_[c]];
    return csv_.error(f, "field '" + std::string(kColNames[c]) + "': expected " +
                             std::string(expected) + ", got '" + f.text + "'");
  }
  // A finite number >= 0 (> 0 when `positive`).
  Status number(Col c, double& out, bool positive = false) const {
    const std::string& v = text(c);
    auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
    if (v.empty() || ec != std::errc() || end != v.data() + v.size() || !std::isfinite(out) ||
        out < 0 || (positive && out == 0)) {
      return error(c, positive ? "a number > 0" : "a number >= 0");
    }
    return Status::ok();
  }
  Status optional_number(Col c, std::optional<double>& out) const {
    out.reset();
    if (text(c).empty()) return Status::ok();
    double v = 0;
    LEPTON_RETURN_IF_ERROR(number(c, v));
    out = v;
    return Status::ok();
  }
  Status non_empty(Col c, std::string_view expected, std::string& out) const {
    out = text(c);
    if (out.empty()) return error(c, expected);
    return Status::ok();
  }

 private:
  const CsvReader& csv_;
  const std::vector<CsvField>& fields_;
  const size_t (&index_)[kNumCols];
};

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

// ---- GCP -------------------------------------------------------------------------------------

struct BuiltinGpus {
  std::string model;
  double count;
};

// The GPUs built into a GCP a2/a3/a4/g2 machine type, from its name (see the header comment).
std::optional<BuiltinGpus> gcp_builtin_gpus(std::string_view name) {
  static constexpr std::pair<std::string_view, std::string_view> kFamilies[] = {
      {"a2-highgpu-", "A100"},  {"a2-megagpu-", "A100"}, {"a2-ultragpu-", "A100-80GB"},
      {"a3-highgpu-", "H100"},  {"a3-edgegpu-", "H100"}, {"a3-megagpu-", "H100-MEGA"},
      {"a3-ultragpu-", "H200"}, {"a4-highgpu-", "B200"},
  };
  for (auto [prefix, model] : kFamilies) {
    if (!name.starts_with(prefix)) continue;
    std::string_view rest = name.substr(prefix.size());  // "8g" or "8g-nolssd"
    int n = 0;
    auto [end, ec] = std::from_chars(rest.data(), rest.data() + rest.size(), n);
    if (ec != std::errc() || n <= 0 || end == rest.data() + rest.size() || *end != 'g') {
      return std::nullopt;
    }
    std::string_view suffix(end + 1, rest.data() + rest.size() - (end + 1));
    if (!suffix.empty() && !suffix.starts_with('-')) return std::nullopt;
    return BuiltinGpus{canonical_gpu_model(model), static_cast<double>(n)};
  }
  static constexpr std::pair<std::string_view, int> kG2[] = {
      {"g2-standard-4", 1},  {"g2-standard-8", 1},  {"g2-standard-12", 1}, {"g2-standard-16", 1},
      {"g2-standard-24", 2}, {"g2-standard-32", 1}, {"g2-standard-48", 4}, {"g2-standard-96", 8},
  };
  for (auto [type, n] : kG2) {
    if (name == type) return BuiltinGpus{canonical_gpu_model("L4"), static_cast<double>(n)};
  }
  return std::nullopt;
}

bool gcp_attaches_to_n1(std::string_view model) {
  for (std::string_view m : {"T4", "P4", "P100", "V100"}) {
    if (iequals(model, m)) return true;
  }
  return false;
}

struct GcpPrice {
  double price;
  std::optional<double> spot;
};
using GcpKey = std::tuple<std::string, std::string, double>;  // zone (or region), model, count

}  // namespace

Result<std::vector<Offer>> parse_catalog(std::string_view content, std::string_view file,
                                         std::string_view cloud) {
  CsvReader csv(content, file);
  std::vector<CsvField> fields;
  bool got = false;
  LEPTON_RETURN_IF_ERROR(csv.next(fields, got));
  if (!got) return csv.error(1, 1, "header: the file is empty");
  size_t index[kNumCols];
  for (int c = 0; c < kNumCols; ++c) {
    index[c] = kAbsent;
    for (size_t i = 0; i < fields.size(); ++i) {
      if (fields[i].text == kColNames[c]) {
        index[c] = i;
        break;
      }
    }
    if (index[c] == kAbsent && c != kZone) {
      return csv.error(fields[0].line, 1,
                       "header: missing column '" + std::string(kColNames[c]) + "'");
    }
  }
  const size_t width = fields.size();
  const bool gcp = cloud == "gcp";

  std::vector<Offer> offers;
  std::map<GcpKey, GcpPrice> gcp_gpus;  // GCP accelerator rows
  std::vector<Offer> gcp_hosts;         // GCP a2/a3/a4/g2 rows, GPUs from the name
  std::vector<Offer> gcp_attachable;    // GCP T4/P4/P100/V100 rows
  while (true) {
    LEPTON_RETURN_IF_ERROR(csv.next(fields, got));
    if (!got) break;
    if (fields.size() != width) {
      const CsvField& last = fields.back();
      return csv.error(last.line, last.column + last.text.size(),
                       "row: expected " + std::to_string(width) + " fields, got " +
                           std::to_string(fields.size()));
    }
    Row row(csv, fields, index);
    Offer o;
    o.cloud = std::string(cloud);
    o.instance_type = row.text(kInstance);
    const bool has_accel = !row.text(kAccel).empty();
    std::optional<BuiltinGpus> builtin;
    if (!has_accel) {
      if (gcp) builtin = gcp_builtin_gpus(o.instance_type);
      if (!builtin) continue;  // no accelerator: not a GPU offer
      o.gpu_model = builtin->model;
      o.gpu_count = builtin->count;
    } else {
      o.gpu_model = canonical_gpu_model(row.text(kAccel));
      LEPTON_RETURN_IF_ERROR(row.number(kCount, o.gpu_count, /*positive=*/true));
    }
    const bool gcp_gpu_only = gcp && has_accel && o.instance_type.empty();
    if (!gcp_gpu_only) {
      if (o.instance_type.empty()) return row.error(kInstance, "an instance type");
      LEPTON_RETURN_IF_ERROR(row.number(kVcpus, o.vcpus));
      LEPTON_RETURN_IF_ERROR(row.number(kMemory, o.memory_gib));
    }
    LEPTON_RETURN_IF_ERROR(row.non_empty(kRegion, "a region", o.region));
    o.zone = row.text(kZone);
    if (row.text(kPrice).empty()) continue;  // not sold on demand (e.g. AWS p5e): skipped
    LEPTON_RETURN_IF_ERROR(row.number(kPrice, o.price_per_hour));
    LEPTON_RETURN_IF_ERROR(row.optional_number(kSpot, o.spot_price_per_hour));

    if (builtin) {
      gcp_hosts.push_back(std::move(o));
    } else if (gcp_gpu_only) {
      GcpKey key{o.zone.empty() ? o.region : o.zone, o.gpu_model, o.gpu_count};
      gcp_gpus.try_emplace(key, GcpPrice{o.price_per_hour, o.spot_price_per_hour});
      if (gcp_attaches_to_n1(o.gpu_model)) {
        o.instance_type = std::string(kGcpAttachableInstance);
        gcp_attachable.push_back(std::move(o));
      }
    } else {
      offers.push_back(std::move(o));
    }
  }
  for (Offer& host : gcp_hosts) {
    if (host.price_per_hour <= 0) continue;  // unpriced host (a4-highgpu-8g)
    auto it = gcp_gpus.find(
        {host.zone.empty() ? host.region : host.zone, host.gpu_model, host.gpu_count});
    if (it == gcp_gpus.end()) continue;  // no GPU price in this zone
    host.price_per_hour += it->second.price;
    if (host.spot_price_per_hour && it->second.spot) {
      *host.spot_price_per_hour += *it->second.spot;
    } else {
      host.spot_price_per_hour.reset();
    }
    offers.push_back(std::move(host));
  }
  for (Offer& o : gcp_attachable) offers.push_back(std::move(o));
  return offers;
}

Result<std::vector<Offer>> load_catalog_file(const std::string& path, std::string_view cloud) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::not_found(path + ": cannot open the file");
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return Status::invalid_argument(path + ": read error");
  return parse_catalog(ss.str(), path, cloud);
}

Result<std::vector<Offer>> load_catalog_dir(const std::string& dir) {
  std::vector<Offer> all;
  for (std::string_view file : kCatalogFiles) {
    std::string_view cloud = file.substr(0, file.find('_'));
    auto offers = load_catalog_file(dir + "/" + std::string(file), cloud);
    if (!offers.is_ok()) return offers.status();
    for (Offer& o : *offers) all.push_back(std::move(o));
  }
  return all;
}

double price_per_gpu_hour(const Offer& offer, bool spot) {
  double price = offer.price_per_hour;
  if (spot) {
    if (!offer.spot_price_per_hour) return std::nan("");
    price = *offer.spot_price_per_hour;
  }
  return price / offer.gpu_count;
}

std::string offer_pool(const Offer& offer, bool spot) {
  return offer.cloud + "/" + offer.region + (offer.zone.empty() ? "" : "/" + offer.zone) + "/" +
         offer.instance_type + (spot ? "/spot" : "");
}

std::vector<Offer> find_offers(const std::vector<Offer>& offers, const OfferQuery& query) {
  const std::string model = canonical_gpu_model(query.gpu_model);
  auto any_of = [](const std::vector<std::string>& wanted, auto&& match) {
    return wanted.empty() || std::any_of(wanted.begin(), wanted.end(), match);
  };
  std::vector<Offer> out;
  for (const Offer& o : offers) {
    if (!model.empty() && !iequals(o.gpu_model, model)) continue;
    if (query.gpu_count > 0 && o.gpu_count != query.gpu_count) continue;
    if (query.spot && !o.spot_price_per_hour) continue;
    if (!any_of(query.clouds, [&](const std::string& c) { return iequals(c, o.cloud); })) continue;
    if (!any_of(query.regions, [&](const std::string& r) {
          return iequals(r, o.region) || (!o.zone.empty() && iequals(r, o.zone));
        })) {
      continue;
    }
    out.push_back(o);
  }
  const bool spot = query.spot;
  std::stable_sort(out.begin(), out.end(), [&](const Offer& a, const Offer& b) {
    double pa = spot ? *a.spot_price_per_hour : a.price_per_hour;
    double pb = spot ? *b.spot_price_per_hour : b.price_per_hour;
    if (pa != pb) return pa < pb;
    double ga = price_per_gpu_hour(a, spot), gb = price_per_gpu_hour(b, spot);
    if (ga != gb) return ga < gb;
    return std::tie(a.cloud, a.region, a.zone, a.instance_type) <
           std::tie(b.cloud, b.region, b.zone, b.instance_type);
  });
  return out;
}

Result<OfferQuery> parse_gpu_query(std::string_view text) {
  OfferQuery q;
  const std::string shown(text);
  size_t colon = text.find(':');
  std::string_view model = text.substr(0, colon);
  if (model.empty()) {
    return Status::invalid_argument("'" + shown + "': expected MODEL or MODEL:COUNT, e.g. H100:8");
  }
  q.gpu_model = canonical_gpu_model(model);
  if (colon == std::string_view::npos) return q;
  std::string_view count = text.substr(colon + 1);
  double n = 0;
  auto [end, ec] = std::from_chars(count.data(), count.data() + count.size(), n);
  if (count.empty() || ec != std::errc() || end != count.data() + count.size() ||
      !std::isfinite(n) || n < 1 || n != std::floor(n) || n > 1024) {
    return Status::invalid_argument(
        "'" + shown + "': expected a whole GPU count from 1 to 1024 after ':', got '" +
        std::string(count) + "' (clouds sell whole GPUs)");
  }
  q.gpu_count = n;
  return q;
}

}  // namespace lepton::cloud
