#include "sim/published_results.h"

#include <charconv>
#include <cmath>

#include "sim/alibaba_trace.h"

namespace lepton::sim {

Result<std::vector<PublishedCurve>> parse_published_curves(std::string_view content,
                                                           std::string_view file) {
  std::vector<PublishedCurve> curves;
  size_t line_no = 0;
  size_t columns = 0;
  size_t first_value = 0;  // index of column "0"
  while (!content.empty()) {
    size_t end = content.find('\n');
    std::string_view line = content.substr(0, end);
    content = end == std::string_view::npos ? std::string_view{} : content.substr(end + 1);
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) continue;
    std::vector<std::string_view> f;
    std::vector<size_t> col;
    for (size_t start = 0;;) {
      size_t comma = line.find(',', start);
      f.push_back(line.substr(start, comma == std::string_view::npos ? comma : comma - start));
      col.push_back(start + 1);
      if (comma == std::string_view::npos) break;
      start = comma + 1;
    }
    auto error = [&](size_t i, const std::string& what) {
      return Status::invalid_argument(std::string(file) + ":" + std::to_string(line_no) + ":" +
                                      std::to_string(col[i]) + ": " + what);
    };
    if (line_no == 1) {
      while (first_value < f.size() && f[first_value] != "0") ++first_value;
      if (f.size() < 5 || f[0] != "workload" || f[1] != "sc_policy" || f[3] != "seed" ||
          first_value == f.size()) {
        return error(0, "header: expected workload,sc_policy,tune,seed,[total_gpus,]0,1,...");
      }
      columns = f.size();
      continue;
    }
    if (f.size() != columns) {
      return error(f.size() - 1, "row: expected " + std::to_string(columns) + " fields, got " +
                                     std::to_string(f.size()));
    }
    PublishedCurve c;
    c.workload = std::string(f[0]);
    c.policy = std::string(f[1]);
    c.tune = std::string(f[2]);
    auto [p, ec] = std::from_chars(f[3].data(), f[3].data() + f[3].size(), c.seed);
    if (ec != std::errc() || p != f[3].data() + f[3].size()) {
      return error(3, "field 'seed': expected an integer, got '" + std::string(f[3]) + "'");
    }
    for (size_t i = first_value; i < f.size(); ++i) {
      if (f[i].empty() || f[i] == "nan") {
        c.values.push_back(NAN);
        continue;
      }
      double v = 0;
      auto [q, ec2] = std::from_chars(f[i].data(), f[i].data() + f[i].size(), v);
      if (ec2 != std::errc() || q != f[i].data() + f[i].size() || !std::isfinite(v)) {
        return error(i, "field '" + std::to_string(i - first_value) +
                            "': expected a number, got '" + std::string(f[i]) + "'");
      }
      c.values.push_back(v);
    }
    curves.push_back(std::move(c));
  }
  if (columns == 0) return Status::invalid_argument(std::string(file) + ":1:1: the file is empty");
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
