#include "agent/gpu_discovery.h"

#include <dlfcn.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <string>

#include "core/gpu_model.h"
#include "core/text.h"

namespace lepton::agent {
namespace {

constexpr int kMaxDeclaredGpus = 64;

std::string upper(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

bool valid_model_name(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
  });
}

Status flag_error(std::string_view spec, std::string_view what) {
  return Status::invalid_argument("--gpus: expected " + std::string(what) + ", got '" +
                                  std::string(spec) + "'");
}

// Splits an upper-cased product name into words at spaces, dashes and underscores.
std::vector<std::string> words(std::string_view name) {
  std::vector<std::string> out;
  std::string cur;
  for (char c : name) {
    if (c == ' ' || c == '-' || c == '_') {
      if (!cur.empty()) out.push_back(std::move(cur));
      cur.clear();
    } else {
      cur += c;
    }
  }
  if (!cur.empty()) out.push_back(std::move(cur));
  return out;
}

bool has_word(const std::vector<std::string>& w, std::string_view word) {
  return std::find(w.begin(), w.end(), word) != w.end();
}

// The minimal NVML ABI this file uses, declared here rather than taken from nvml.h so that the
// build needs no CUDA toolkit. The signatures are those of the NVML C API (nvml.h, stable since
// the _v2 entry points were added in driver 3xx).
using nvmlReturn_t = int;  // an enum in nvml.h; NVML_SUCCESS is 0
using nvmlDevice_t = struct nvmlDeviceOpaque*;
struct nvmlMemory_t {
  unsigned long long total;  // bytes
  unsigned long long free;
  unsigned long long used;
};
constexpr nvmlReturn_t kNvmlSuccess = 0;
constexpr unsigned kNvmlNameBufferSize = 96;  // NVML_DEVICE_NAME_V2_BUFFER_SIZE
constexpr unsigned kNvmlUuidBufferSize = 96;  // NVML_DEVICE_UUID_V2_BUFFER_SIZE

struct NvmlApi {
  nvmlReturn_t (*init)();
  nvmlReturn_t (*shutdown)();
  nvmlReturn_t (*get_count)(unsigned*);
  nvmlReturn_t (*get_handle)(unsigned, nvmlDevice_t*);
  nvmlReturn_t (*get_name)(nvmlDevice_t, char*, unsigned);
  nvmlReturn_t (*get_uuid)(nvmlDevice_t, char*, unsigned);
  nvmlReturn_t (*get_memory)(nvmlDevice_t, nvmlMemory_t*);
  const char* (*error_string)(nvmlReturn_t);
};

class Library {
 public:
  explicit Library(void* handle) : handle_(handle) {}
  Library(const Library&) = delete;
  Library& operator=(const Library&) = delete;
  ~Library() {
    if (handle_ != nullptr) dlclose(handle_);
  }
  void* get() const { return handle_; }

 private:
  void* handle_;
};

template <typename Fn>
bool resolve(void* lib, const char* name, Fn& fn, std::string& missing) {
  void* sym = dlsym(lib, name);
  if (sym == nullptr) {
    if (!missing.empty()) missing += ", ";
    missing += name;
    return false;
  }
  fn = reinterpret_cast<Fn>(sym);
  return true;
}

struct Discovery {
  Result<std::vector<GpuDevice>> result = std::vector<GpuDevice>{};
  bool library_missing = false;
};

Discovery discover(std::string_view library) {
  Discovery d;
  std::string path(library);
  Library lib(dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL));
  if (lib.get() == nullptr) {
    d.library_missing = true;
    d.result = Status(StatusCode::kUnavailable,
                      "NVML not found (" + path + "): no NVIDIA driver on this machine");
    return d;
  }
  NvmlApi api{};
  std::string missing;
  bool ok = resolve(lib.get(), "nvmlInit_v2", api.init, missing);
  ok &= resolve(lib.get(), "nvmlShutdown", api.shutdown, missing);
  ok &= resolve(lib.get(), "nvmlDeviceGetCount_v2", api.get_count, missing);
  ok &= resolve(lib.get(), "nvmlDeviceGetHandleByIndex_v2", api.get_handle, missing);
  ok &= resolve(lib.get(), "nvmlDeviceGetName", api.get_name, missing);
  ok &= resolve(lib.get(), "nvmlDeviceGetUUID", api.get_uuid, missing);
  ok &= resolve(lib.get(), "nvmlDeviceGetMemoryInfo", api.get_memory, missing);
  ok &= resolve(lib.get(), "nvmlErrorString", api.error_string, missing);
  if (!ok) {
    d.result = Status(StatusCode::kUnavailable,
                      "NVML (" + path + ") lacks " + missing + "; is the NVIDIA driver too old?");
    return d;
  }
  auto describe = [&](nvmlReturn_t rc) {
    const char* s = api.error_string(rc);
    return std::string(s != nullptr ? s : "unknown error") + " (" + std::to_string(rc) + ")";
  };
  if (nvmlReturn_t rc = api.init(); rc != kNvmlSuccess) {
    d.result = Status(StatusCode::kUnavailable, "NVML: nvmlInit_v2 failed: " + describe(rc));
    return d;
  }
  auto fail = [&](const std::string& what, nvmlReturn_t rc) {
    return Status(StatusCode::kInternal, "NVML: " + what + " failed: " + describe(rc));
  };
  std::vector<GpuDevice> devices;
  unsigned count = 0;
  if (nvmlReturn_t count_rc = api.get_count(&count); count_rc != kNvmlSuccess) {
    d.result = fail("nvmlDeviceGetCount_v2", count_rc);
  } else {
    for (unsigned i = 0; i < count; ++i) {
      std::string at = " for GPU " + std::to_string(i);
      nvmlDevice_t dev = nullptr;
      char name[kNvmlNameBufferSize] = {};
      char uuid[kNvmlUuidBufferSize] = {};
      nvmlMemory_t mem{};
      nvmlReturn_t rc = api.get_handle(i, &dev);
      if (rc != kNvmlSuccess) {
        d.result = fail("nvmlDeviceGetHandleByIndex_v2" + at, rc);
        break;
      }
      if (rc = api.get_name(dev, name, sizeof name); rc != kNvmlSuccess) {
        d.result = fail("nvmlDeviceGetName" + at, rc);
        break;
      }
      if (rc = api.get_uuid(dev, uuid, sizeof uuid); rc != kNvmlSuccess) {
        d.result = fail("nvmlDeviceGetUUID" + at, rc);
        break;
      }
      if (rc = api.get_memory(dev, &mem); rc != kNvmlSuccess) {
        d.result = fail("nvmlDeviceGetMemoryInfo" + at, rc);
        break;
      }
      name[sizeof name - 1] = '\0';
      uuid[sizeof uuid - 1] = '\0';
      GpuDevice g;
      g.index = static_cast<int>(i);
      g.memory_mib = static_cast<int64_t>(mem.total / (1024 * 1024));
      g.product_name = name;
      g.model = model_from_nvml_name(g.product_name, g.memory_mib);
      g.uuid = uuid;
      devices.push_back(std::move(g));
    }
    if (d.result.is_ok()) d.result = std::move(devices);
  }
  api.shutdown();  // Nothing to do about a failure here; the query itself is done.
  return d;
}

}  // namespace

Result<std::vector<GpuDevice>> parse_declared_gpus(std::string_view spec) {
  constexpr std::string_view kExpected = "MODEL:COUNT with one model per node (e.g. A100-80GB:8)";
  std::string_view s = trim_space(spec);
  if (s.empty() || upper(s) == "NONE") return std::vector<GpuDevice>{};
  if (s.find(',') != std::string_view::npos) {
    return flag_error(spec, std::string(kExpected) +
                                "; a node has one GPU model, so a list of models is not allowed");
  }
  size_t colon = s.rfind(':');
  if (colon == std::string_view::npos) return flag_error(spec, kExpected);
  std::string_view model = trim_space(s.substr(0, colon));
  std::string_view count_text = trim_space(s.substr(colon + 1));
  if (!valid_model_name(model)) {
    return flag_error(spec, "a model name of letters, digits, '-', '_' or '.' before ':' (" +
                                std::string(kExpected) + ")");
  }
  int count = 0;
  auto [end, ec] = std::from_chars(count_text.data(), count_text.data() + count_text.size(), count);
  if (count_text.empty() || ec != std::errc() || end != count_text.data() + count_text.size() ||
      count < 1 || count > kMaxDeclaredGpus) {
    return flag_error(spec, "a GPU count from 1 to " + std::to_string(kMaxDeclaredGpus) +
                                " after ':' (" + std::string(kExpected) + ")");
  }
  auto info = find_gpu_model(model);
  std::vector<GpuDevice> devices(static_cast<size_t>(count));
  for (int i = 0; i < count; ++i) {
    GpuDevice& g = devices[static_cast<size_t>(i)];
    g.index = i;
    g.model = canonical_gpu_model(model);
    g.memory_mib = info ? int64_t{info->memory_gib} * 1024 : 0;
  }
  return devices;
}

std::string model_from_nvml_name(std::string_view nvml_name, int64_t memory_mib) {
  std::string name(trim_space(nvml_name));
  std::vector<std::string> w = words(upper(name));
  // Drop the vendor prefix: "NVIDIA A100-...", "Tesla T4", "NVIDIA Tesla V100-...".
  size_t skip = 0;
  while (skip < w.size() && (w[skip] == "NVIDIA" || w[skip] == "TESLA")) ++skip;
  if (skip == w.size()) return name;
  w.erase(w.begin(), w.begin() + static_cast<std::ptrdiff_t>(skip));
  const std::string& family = w.front();
  // The size from the name when it carries one, else from the memory NVML reports (a bit below
  // the nominal size: an 80 GB A100 reports 81920 MiB, less with ECC on some boards).
  auto larger = [&](std::string_view big_word, std::string_view small_word, int64_t cut_mib) {
    if (has_word(w, big_word)) return true;
    if (has_word(w, small_word)) return false;
    return memory_mib > cut_mib;
  };
  if (family == "A100") return larger("80GB", "40GB", 60 * 1024) ? "A100-80GB" : "A100";
  if (family == "V100" || family == "V100S") {
    return larger("32GB", "16GB", 24 * 1024) ? "V100-32GB" : "V100";
  }
  for (std::string_view known : {"H200", "H100", "L40S", "L4", "A10G", "A10", "T4", "P100"}) {
    if (family == known) return canonical_gpu_model(known);
  }
  // Unknown: the original spelling after the vendor words, spaces turned into dashes.
  std::string_view rest = name;
  for (size_t i = 0; i < skip; ++i) {
    rest = trim_space(rest);
    size_t end_word = rest.find_first_of(" -_");
    rest = end_word == std::string_view::npos ? std::string_view{} : rest.substr(end_word + 1);
  }
  std::string out(trim_space(rest));
  std::replace(out.begin(), out.end(), ' ', '-');
  return canonical_gpu_model(out);
}

Result<std::vector<GpuDevice>> discover_nvml_gpus(std::string_view library) {
  return discover(library).result;
}

Result<std::vector<GpuDevice>> node_gpus(std::string_view declared) {
  if (!trim_space(declared).empty()) return parse_declared_gpus(declared);
  Discovery d = discover(kNvmlLibrary);
  if (d.library_missing) return std::vector<GpuDevice>{};
  return std::move(d.result);
}

}  // namespace lepton::agent
