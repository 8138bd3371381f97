#include "sim/csv.h"

#include <fstream>
#include <sstream>

namespace lepton::sim {

Result<std::string> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::not_found(path + ": cannot open the file");
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return Status::invalid_argument(path + ": read error");
  return ss.str();
}

}  // namespace lepton::sim
