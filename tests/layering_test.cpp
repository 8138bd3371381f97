// Keeps the module layering of docs/architecture.md true: a file under src/MODULE/ may include
// only headers of MODULE itself and of the modules above it in the document's table of modules.
// The table is read from the document, so the order is written down once.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;

// The modules in the order of the table's rows ("| `core/` | ...").
std::vector<std::string> modules_in_order(const fs::path& doc) {
  std::ifstream in(doc);
  std::vector<std::string> order;
  const std::regex row(R"(^\| `([a-z_]+)/`)");
  for (std::string line; std::getline(in, line);) {
    std::smatch m;
    if (std::regex_search(line, m, row)) order.push_back(m[1]);
  }
  return order;
}

TEST(Layering, EveryIncludeGoesToAModuleAbove) {
  const fs::path root = LEPTON_SOURCE_DIR;
  const std::vector<std::string> order = modules_in_order(root / "docs/architecture.md");
  ASSERT_GE(order.size(), 10u) << "the modules table of docs/architecture.md was not found";
  std::map<std::string, size_t> rank;
  for (size_t i = 0; i < order.size(); ++i) rank[order[i]] = i;
  // Every folder under src/ is in the table.
  for (const auto& entry : fs::directory_iterator(root / "src")) {
    if (entry.is_directory()) {
      EXPECT_TRUE(rank.count(entry.path().filename().string()))
          << "src/" << entry.path().filename().string()
          << "/ is not in the modules table of docs/architecture.md";
    }
  }
  const std::regex include(R"(^\s*#\s*include\s+"([a-z_]+)/)");
  int files = 0;
  std::vector<std::string> violations;
  for (const auto& entry : fs::recursive_directory_iterator(root / "src")) {
    const fs::path path = entry.path();
    if (!entry.is_regular_file() || (path.extension() != ".h" && path.extension() != ".cpp")) {
      continue;
    }
    const std::string module = fs::relative(path, root / "src").begin()->string();
    auto own = rank.find(module);
    if (own == rank.end()) continue;  // reported above
    ++files;
    std::ifstream in(path);
    int line_number = 0;
    for (std::string line; std::getline(in, line);) {
      ++line_number;
      std::smatch m;
      if (!std::regex_search(line, m, include)) continue;
      auto to = rank.find(m[1]);
      if (to != rank.end() && to->second > own->second) {
        violations.push_back(fs::relative(path, root).string() + ":" + std::to_string(line_number) +
                             ": " + module + "/ includes " + std::string(m[1]) +
                             "/, which is below it");
      }
    }
  }
  EXPECT_GT(files, 100);
  std::ostringstream all;
  for (const std::string& v : violations) all << v << "\n";
  EXPECT_TRUE(violations.empty()) << all.str();
}

}  // namespace
