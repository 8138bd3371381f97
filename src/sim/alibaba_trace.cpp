#include "sim/alibaba_trace.h"

#include <algorithm>
#include <charconv>
#include <fstream>
#include <sstream>

#include "core/csv.h"
#include "sim/csv.h"

namespace lepton::sim {
namespace {

constexpr size_t kAbsent = static_cast<size_t>(-1);

// Maps header names to field indexes: `required` ones first, then `optional` ones (kAbsent when
// the file lacks them; some of the trace's files carry only the resource columns).
class Header {
 public:
  static Result<Header> parse(const CsvReader& csv, const std::vector<CsvField>& row,
                              const std::vector<std::string_view>& required,
                              const std::vector<std::string_view>& optional = {}) {
    Header h;
    for (std::string_view name : required) {
      size_t i = h.find(row, name);
      if (i == kAbsent)
        return csv.error(row[0].line, 1, "header: missing column '" + std::string(name) + "'");
      h.index_.push_back(i);
    }
    for (std::string_view name : optional) h.index_.push_back(h.find(row, name));
    h.width_ = row.size();
    return h;
  }
  size_t operator[](size_t k) const { return index_[k]; }
  bool has(size_t k) const { return index_[k] != kAbsent; }
  size_t width() const { return width_; }

 private:
  static size_t find(const std::vector<CsvField>& row, std::string_view name) {
    for (size_t i = 0; i < row.size(); ++i) {
      if (row[i].text == name) return i;
    }
    return kAbsent;
  }

 private:
  std::vector<size_t> index_;
  size_t width_ = 0;
};

bool is_missing(std::string_view v) { return v.empty() || v == "nan" || v == "NaN"; }

Status field_error(const CsvReader& csv, const std::vector<CsvField>& row, size_t i,
                   std::string_view name, std::string_view expected) {
  return csv.error(row[i], "field '" + std::string(name) + "': expected " + std::string(expected) +
                               ", got '" + row[i].text + "'");
}

// Parses a non-negative integer no larger than `max`.
Status parse_int(const CsvReader& csv, const std::vector<CsvField>& row, size_t i,
                 std::string_view name, int64_t max, int64_t& out) {
  std::string_view v = row[i].text;
  auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
  if (v.empty() || ec != std::errc() || end != v.data() + v.size() || out < 0 || out > max) {
    return field_error(csv, row, i, name, "an integer from 0 to " + std::to_string(max));
  }
  return Status::ok();
}

Status check_width(const CsvReader& csv, const std::vector<CsvField>& row, const Header& header) {
  if (row.size() != header.width()) {
    size_t col = row.back().column + row.back().text.size();
    return csv.error(row.back().line, col,
                     "row: expected " + std::to_string(header.width()) + " fields, got " +
                         std::to_string(row.size()));
  }
  return Status::ok();
}

constexpr int64_t kMaxCpuMilli = 100'000'000;     // 100k cores
constexpr int64_t kMaxMemoryMib = 1'000'000'000;  // ~1 PiB
constexpr int64_t kMaxTime = 1'000'000'000'000;   // seconds

}  // namespace

Result<std::vector<sched::NodeSpec>> parse_alibaba_nodes(std::string_view content,
                                                         std::string_view file) {
  CsvReader csv(content, file);
  std::vector<CsvField> row;
  bool got = false;
  LEPTON_RETURN_IF_ERROR(csv.next(row, got));
  if (!got) return csv.error(1, 1, "header: the file is empty");
  auto header = Header::parse(csv, row, {"sn", "cpu_milli", "memory_mib", "gpu", "model"});
  if (!header.is_ok()) return header.status();
  const Header& h = *header;
  const size_t header_line = row[0].line;
  std::vector<sched::NodeSpec> nodes;
  while (true) {
    LEPTON_RETURN_IF_ERROR(csv.next(row, got));
    if (!got) break;
    LEPTON_RETURN_IF_ERROR(check_width(csv, row, h));
    sched::NodeSpec n;
    n.name = row[h[0]].text;
    if (n.name.empty()) return field_error(csv, row, h[0], "sn", "a node name");
    int64_t gpus = 0;
    LEPTON_RETURN_IF_ERROR(parse_int(csv, row, h[1], "cpu_milli", kMaxCpuMilli, n.cpu_milli));
    LEPTON_RETURN_IF_ERROR(parse_int(csv, row, h[2], "memory_mib", kMaxMemoryMib, n.memory_mib));
    LEPTON_RETURN_IF_ERROR(parse_int(csv, row, h[3], "gpu", sched::kMaxGpusPerNode, gpus));
    if (n.cpu_milli == 0) return field_error(csv, row, h[1], "cpu_milli", "a value > 0");
    if (n.memory_mib == 0) return field_error(csv, row, h[2], "memory_mib", "a value > 0");
    n.gpu_count = static_cast<int>(gpus);
    std::string_view model = row[h[4]].text;
    if (gpus > 0 && is_missing(model)) {
      return field_error(csv, row, h[4], "model", "a GPU model for a node with GPUs");
    }
    if (gpus > 0) n.gpu_model = std::string(model);
    nodes.push_back(std::move(n));
  }
  if (nodes.empty()) return csv.error(header_line, 1, "the file has a header but no nodes");
  return nodes;
}

Result<std::vector<TracePod>> parse_alibaba_pods(std::string_view content, std::string_view file) {
  CsvReader csv(content, file);
  std::vector<CsvField> row;
  bool got = false;
  LEPTON_RETURN_IF_ERROR(csv.next(row, got));
  if (!got) return csv.error(1, 1, "header: the file is empty");
  auto header = Header::parse(
      csv, row, {"name", "cpu_milli", "memory_mib", "num_gpu", "gpu_milli"},
      {"gpu_spec", "qos", "pod_phase", "creation_time", "deletion_time", "scheduled_time"});
  if (!header.is_ok()) return header.status();
  const Header& h = *header;
  std::vector<TracePod> pods;
  while (true) {
    LEPTON_RETURN_IF_ERROR(csv.next(row, got));
    if (!got) break;
    LEPTON_RETURN_IF_ERROR(check_width(csv, row, h));
    TracePod p;
    p.name = row[h[0]].text;
    if (p.name.empty()) return field_error(csv, row, h[0], "name", "a pod name");
    int64_t num_gpu = 0, gpu_milli = 0;
    LEPTON_RETURN_IF_ERROR(parse_int(csv, row, h[1], "cpu_milli", kMaxCpuMilli, p.res.cpu_milli));
    LEPTON_RETURN_IF_ERROR(
        parse_int(csv, row, h[2], "memory_mib", kMaxMemoryMib, p.res.memory_mib));
    LEPTON_RETURN_IF_ERROR(parse_int(csv, row, h[3], "num_gpu", sched::kMaxGpusPerNode, num_gpu));
    LEPTON_RETURN_IF_ERROR(parse_int(csv, row, h[4], "gpu_milli", kMilliPerGpu, gpu_milli));
    if (num_gpu == 0) {
      gpu_milli = 0;  // The trace leaves gpu_milli meaningless for CPU-only pods.
    } else if (gpu_milli == 0) {
      return field_error(csv, row, h[4], "gpu_milli", "1..1000 for a pod with GPUs");
    } else if (num_gpu > 1 && gpu_milli != kMilliPerGpu) {
      return field_error(csv, row, h[4], "gpu_milli", "1000 for a pod with several GPUs");
    }
    p.res.gpu_count = static_cast<int32_t>(num_gpu);
    p.res.gpu_milli = static_cast<int32_t>(gpu_milli);
    std::string_view spec = h.has(5) ? row[h[5]].text : std::string_view{};
    if (!is_missing(spec)) {
      size_t start = 0;
      while (start <= spec.size()) {
        size_t bar = spec.find('|', start);
        std::string_view model = spec.substr(
            start, bar == std::string_view::npos ? std::string_view::npos : bar - start);
        if (model.empty()) {
          return field_error(csv, row, h[5], "gpu_spec", "GPU models separated by '|'");
        }
        p.gpu_spec.emplace_back(model);
        if (bar == std::string_view::npos) break;
        start = bar + 1;
      }
    }
    if (h.has(6)) p.qos = row[h[6]].text;
    if (h.has(7)) p.phase = row[h[7]].text;
    if (h.has(8)) {
      LEPTON_RETURN_IF_ERROR(parse_int(csv, row, h[8], "creation_time", kMaxTime, p.creation_time));
    }
    for (auto [k, name, out] : {std::tuple{h[9], "deletion_time", &p.deletion_time},
                                std::tuple{h[10], "scheduled_time", &p.scheduled_time}}) {
      if (k == kAbsent || is_missing(row[k].text)) continue;
      int64_t t = 0;
      LEPTON_RETURN_IF_ERROR(parse_int(csv, row, k, name, kMaxTime, t));
      *out = t;
    }
    pods.push_back(std::move(p));
  }
  return pods;
}

Result<std::vector<sched::NodeSpec>> read_alibaba_nodes(const std::string& path) {
  auto content = read_file(path);
  if (!content.is_ok()) return content.status();
  return parse_alibaba_nodes(*content, path);
}

Result<std::vector<TracePod>> read_alibaba_pods(const std::string& path) {
  auto content = read_file(path);
  if (!content.is_ok()) return content.status();
  return parse_alibaba_pods(*content, path);
}

}  // namespace lepton::sim
