#include "sim/published_results.h"

#include <charconv>
#include <cmath>

#include "core/csv.h"
#include "sim/csv.h"

namespace lepton::sim {

Result<std::vector<PublishedCurve>> parse_published_curves(std::string_view content,
                                                           std::string_view file) {
  CsvReader csv(content, file);
  std::vector<CsvField> h;
  bool got = false;
  LEPTON_RETURN_IF_ERROR(csv.next(h, got));
  if (!got) return csv.error(1, 1, "header: the file is empty");
  size_t first_value = 0;  // index of column "0"
  while (first_value < h.size() && h[first_value].text != "0") ++first_value;
  if (h.size() < 5 || h[0].text != "workload" || h[1].text != "sc_policy" || h[3].text != "seed" ||
      first_value == h.size()) {
    return csv.error(h[0].line, 1,
                     "header: expected workload,sc_policy,tune,seed,[total_gpus,]0,1,...");
  }
  const size_t columns = h.size();
  std::vector<PublishedCurve> curves;
  std::vector<CsvField> f;
  while (true) {
    LEPTON_RETURN_IF_ERROR(csv.next(f, got));
    if (!got) break;
    if (f.size() != columns) {
      return csv.error(f.back(), "row: expected " + std::to_string(columns) + " fields, got " +
                                     std::to_string(f.size()));
    }
    PublishedCurve c;
    c.workload = f[0].text;
    c.policy = f[1].text;
    c.tune = f[2].text;
    const std::string& seed = f[3].text;
    auto [p, ec] = std::from_chars(seed.data(), seed.data() + seed.size(), c.seed);
    if (ec != std::errc() || p != seed.data() + seed.size()) {
      return csv.error(f[3], "field 'seed': expected an integer, got '" + seed + "'");
    }
    for (size_t i = first_value; i < f.size(); ++i) {
      const std::string& text = f[i].text;
      if (text.empty() || text == "nan") {
        c.values.push_back(NAN);
        continue;
      }
      double v = 0;
      auto [q, ec2] = std::from_chars(text.data(), text.data() + text.size(), v);
      if (ec2 != std::errc() || q != text.data() + text.size() || !std::isfinite(v)) {
        return csv.error(f[i], "field '" + std::to_string(i - first_value) +
                                   "': expected a number, got '" + text + "'");
      }
      c.values.push_back(v);
    }
    curves.push_back(std::move(c));
  }
  return curves;
}

Result<std::vector<PublishedCurve>> read_published_curves(const std::string& path) {
  auto content = read_file(path);
  if (!content.is_ok()) return content.status();
  return parse_published_curves(*content, path);
}

std::string_view published_policy_name(std::string_view policy) {
  if (policy == "random") return "01-Random";
  if (policy == "dotprod") return "02-DotProd";
  if (policy == "gpupacking") return "04-GpuPacking";
  if (policy == "bestfit") return "05-BestFit";
  if (policy == "fgd") return "06-FGD";
  return {};
}

std::optional<double> published_mean(const std::vector<PublishedCurve>& curves,
                                     std::string_view workload, std::string_view policy,
                                     size_t percent) {
  std::string_view theirs = published_policy_name(policy);
  if (theirs.empty()) return std::nullopt;
  double sum = 0;
  int n = 0;
  for (const PublishedCurve& c : curves) {
    if (c.workload != workload || c.policy != theirs || percent >= c.values.size()) continue;
    if (std::isnan(c.values[percent])) continue;
    sum += c.values[percent];
    ++n;
  }
  if (n == 0) return std::nullopt;
  return sum / n;
}

}  // namespace lepton::sim
