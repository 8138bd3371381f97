#include "spec/job_yaml.h"

#include <yaml-cpp/depthguard.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <exception>
#include <sstream>
#include <string>
#include <vector>

#include "spec/decode.h"

namespace lepton::spec {
namespace {

using internal::Node;

// A YAML document can name one node many times (aliases); converting more nodes than this is an
// error rather than unbounded work.
constexpr size_t kMaxNodes = 1'000'000;

std::string position(std::string_view file, const YAML::Mark& mark) {
  std::string s(file);
  if (!mark.is_null())
    s += ":" + std::to_string(mark.line + 1) + ":" + std::to_string(mark.column + 1);
  return s + ": ";
}

// Converts `in` into `out` down to internal::kMaxTreeDepth; false when over the node budget.
bool convert(const YAML::Node& in, int depth, size_t& budget, Node& out) {
  if (budget == 0) return false;
  --budget;
  YAML::Mark mark = in.Mark();
  if (!mark.is_null()) {
    out.line = mark.line + 1;
    out.column = mark.column + 1;
  }
  switch (in.Type()) {
    case YAML::NodeType::Undefined:
    case YAML::NodeType::Null:
      out.kind = Node::Kind::kNull;
      return true;
    case YAML::NodeType::Scalar:
      out.kind = Node::Kind::kScalar;
      out.text = in.Scalar();
      return true;
    case YAML::NodeType::Sequence:
      out.kind = Node::Kind::kList;
      if (depth >= internal::kMaxTreeDepth) {
        out.truncated = true;
        return true;
      }
      for (const YAML::Node& item : in) {
        out.items.emplace_back();
        if (!convert(item, depth + 1, budget, out.items.back())) return false;
      }
      return true;
    case YAML::NodeType::Map:
      out.kind = Node::Kind::kMap;
      if (depth >= internal::kMaxTreeDepth) {
        out.truncated = true;
        return true;
      }
      for (const auto& entry : in) {
        out.entries.emplace_back();
        auto& [key, value] = out.entries.back();
        if (!convert(entry.first, depth + 1, budget, key) ||
            !convert(entry.second, depth + 1, budget, value)) {
          return false;
        }
        // yaml-cpp places an empty value ("run:") at the next token; the key is a better place.
        if (value.kind == Node::Kind::kNull && value.line != key.line) {
          value.line = key.line;
          value.column = key.column;
        }
      }
      return true;
  }
  return true;
}

// Records where documents start; ignores everything else.
class DocumentStarts : public YAML::EventHandler {
 public:
  void OnDocumentStart(const YAML::Mark& mark) override { starts.push_back(mark); }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t,
                const std::string&) override {}
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {}
  void OnMapEnd() override {}

  std::vector<YAML::Mark> starts;
};

// Counts the documents in `text`, which must be one or none. yaml-cpp 0.7 reports a stray token
// it cannot parse (",") as an endless run of empty documents at that token (jbeder/yaml-cpp#1040,
// fixed upstream by #1319), so a document that starts where the previous one did is an error.
// Throws what yaml-cpp throws.
Result<size_t> count_documents(const std::string& text, std::string_view file) {
  std::istringstream in(text);
  YAML::Parser parser(in);
  DocumentStarts docs;
  while (parser.HandleNextDocument(docs)) {
    size_t n = docs.starts.size();
    if (n >= 2 && docs.starts[n - 1].pos == docs.starts[n - 2].pos) {
      const YAML::Mark& at = docs.starts[n - 1];
      std::string got = at.pos >= 0 && static_cast<size_t>(at.pos) < text.size()
                            ? "'" + internal::quote(text.substr(at.pos, 1)) + "'"
                            : "the end";
      return Status::invalid_argument(position(file, at) + "invalid YAML: unexpected " + got);
    }
  }
  if (docs.starts.size() > 1) {
    return Status::invalid_argument(position(file, docs.starts[1]) +
                                    "expected one YAML document, got " +
                                    std::to_string(docs.starts.size()));
  }
  return docs.starts.size();
}

}  // namespace

namespace internal {

Result<Node> read_yaml(std::string_view text, std::string_view file) {
  if (text.size() > kMaxDocumentBytes) {
    return Status::invalid_argument(std::string(file) + ":1:1: expected a document of at most " +
                                    std::to_string(kMaxDocumentBytes) + " bytes, got " +
                                    std::to_string(text.size()));
  }
  Node root;
  try {
    std::string doc(text);
    auto count = count_documents(doc, file);
    if (!count.is_ok()) return count.status();
    if (*count == 0) {
      root.line = root.column = 1;
    } else {
      size_t budget = kMaxNodes;
      if (!convert(YAML::Load(doc), 0, budget, root)) {
        return Status::invalid_argument(std::string(file) + ":1:1: expected at most " +
                                        std::to_string(kMaxNodes) +
                                        " YAML nodes (counting each use of an alias), got more");
      }
    }
  } catch (const YAML::DeepRecursion& e) {
    // yaml-cpp 0.7 gives this one neither a position nor a useful message.
    return Status::invalid_argument(std::string(file) + ":1:1: invalid YAML: expected at most " +
                                    std::to_string(e.depth()) + " levels of nesting, got more");
  } catch (const YAML::Exception& e) {
    return Status::invalid_argument(position(file, e.mark) + "invalid YAML: " + e.msg);
  } catch (const std::exception& e) {
    return Status::invalid_argument(std::string(file) + ": invalid YAML: " + e.what());
  }
  if (root.kind == Node::Kind::kNull && root.line == 0) root.line = root.column = 1;
  return root;
}

}  // namespace internal

Result<JobSpec> parse_job_yaml(std::string_view text, std::string_view file) {
  auto root = internal::read_yaml(text, file);
  if (!root.is_ok()) return root.status();
  return internal::decode_job_spec(*root, {.file = file, .structured_resources = false});
}

}  // namespace lepton::spec
