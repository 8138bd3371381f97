// A fake libnvidia-ml.so.1 for tests: two A100-SXM4-80GB GPUs, or, with LEPTON_FAKE_NVML=no_driver
// in the environment, an nvmlInit_v2 that fails the way it does when the kernel module is not
// loaded. fake_nvml_calls() reports init and shutdown counts so tests can check they balance.
#include <cstdlib>
#include <cstring>

namespace {

struct FakeDevice {
  const char* name;
  const char* uuid;
  unsigned long long total_bytes;
};

constexpr FakeDevice kDevices[] = {
    {"NVIDIA A100-SXM4-80GB", "GPU-00000000-fake-0000-0000-000000000000", 85899345920ULL},
    {"NVIDIA A100-SXM4-80GB", "GPU-11111111-fake-1111-1111-111111111111", 85899345920ULL},
};
constexpr int kSuccess = 0;
constexpr int kInvalidArgument = 2;
constexpr int kInsufficientSize = 7;
constexpr int kDriverNotLoaded = 9;

int inits = 0;
int shutdowns = 0;

struct Memory {
  unsigned long long total, free, used;
};

int copy_string(const char* s, char* out, unsigned length) {
  if (std::strlen(s) + 1 > length) return kInsufficientSize;
  std::strcpy(out, s);
  return kSuccess;
}

}  // namespace

extern "C" {

void fake_nvml_calls(int* init_calls, int* shutdown_calls) {
  *init_calls = inits;
  *shutdown_calls = shutdowns;
}

int nvmlInit_v2() {
  const char* mode = std::getenv("LEPTON_FAKE_NVML");
  if (mode != nullptr && std::strcmp(mode, "no_driver") == 0) return kDriverNotLoaded;
  ++inits;
  return kSuccess;
}

int nvmlShutdown() {
  ++shutdowns;
  return kSuccess;
}

const char* nvmlErrorString(int rc) {
  switch (rc) {
    case kSuccess:
      return "Success";
    case kDriverNotLoaded:
      return "Driver Not Loaded";
    default:
      return "Unknown Error";
  }
}

int nvmlDeviceGetCount_v2(unsigned* count) {
  *count = sizeof kDevices / sizeof kDevices[0];
  return kSuccess;
}

int nvmlDeviceGetHandleByIndex_v2(unsigned index, const FakeDevice** device) {
  if (index >= sizeof kDevices / sizeof kDevices[0]) return kInvalidArgument;
  *device = &kDevices[index];
  return kSuccess;
}

int nvmlDeviceGetName(const FakeDevice* device, char* name, unsigned length) {
  return copy_string(device->name, name, length);
}

int nvmlDeviceGetUUID(const FakeDevice* device, char* uuid, unsigned length) {
  return copy_string(device->uuid, uuid, length);
}

int nvmlDeviceGetMemoryInfo(const FakeDevice* device, Memory* memory) {
  memory->total = device->total_bytes;
  memory->used = 1ULL << 20;
  memory->free = device->total_bytes - memory->used;
  return kSuccess;
}

}  // extern "C"
