#include "spec/json_document.h"

#include <exception>
#include <functional>
#include <set>
#include <string>
#include <vector>

#include "spec/decode.h"

namespace lepton::spec::internal {
namespace {

using nlohmann::json;

// Finds the first key repeated within one object (nlohmann keeps only the last silently).
class DuplicateKeys {
 public:
  bool operator()(int /*depth*/, json::parse_event_t event, json& parsed) {
    switch (event) {
      case json::parse_event_t::object_start:
        frames_.push_back({true, {}, {}});
        break;
      case json::parse_event_t::array_start:
        frames_.push_back({false, {}, {}});
        break;
      case json::parse_event_t::object_end:
      case json::parse_event_t::array_end:
        if (!frames_.empty()) frames_.pop_back();
        break;
      case json::parse_event_t::key:
        if (!frames_.empty() && parsed.is_string()) {
          Frame& f = frames_.back();
          f.key = parsed.get<std::string>();
          if (!f.keys.insert(f.key).second && duplicate_.empty()) {
            for (const Frame& g : frames_) {
              if (!g.object) continue;
              if (!duplicate_.empty()) duplicate_ += ".";
              duplicate_ += quote(g.key);
            }
          }
        }
        break;
      case json::parse_event_t::value:
        break;
    }
    return true;
  }
  // The dotted path of the first repeated field; empty when none.
  const std::string& duplicate() const { return duplicate_; }

 private:
  struct Frame {
    bool object;
    std::set<std::string> keys;
    std::string key;
  };
  std::vector<Frame> frames_;
  std::string duplicate_;
};

}  // namespace

Result<json> parse_json_object(std::string_view text, std::string_view what) {
  if (text.size() > kMaxDocumentBytes) {
    return Status::invalid_argument("expected a document of at most " +
                                    std::to_string(kMaxDocumentBytes) + " bytes, got " +
                                    std::to_string(text.size()));
  }
  const std::string expected = "expected " + std::string(what) + " (a JSON object), got ";
  if (text.find_first_not_of(" \t\r\n") == std::string_view::npos) {
    return Status::invalid_argument(expected + "an empty document");
  }
  try {
    DuplicateKeys duplicates;
    json j = json::parse(text.begin(), text.end(), std::ref(duplicates));
    if (!duplicates.duplicate().empty()) {
      return Status::invalid_argument(duplicates.duplicate() +
                                      ": expected each field once, got it twice");
    }
    if (!j.is_object()) return Status::invalid_argument(expected + j.type_name());
    return j;
  } catch (const json::exception& e) {
    std::string message = e.what();
    if (size_t end = message.find("] ");
        message.rfind("[json.exception.", 0) == 0 && end != std::string::npos) {
      message = message.substr(end + 2);
    }
    return Status::invalid_argument("expected JSON, got " + message);
  } catch (const std::exception& e) {
    return Status::invalid_argument(std::string("expected JSON, got ") + e.what());
  }
}

}  // namespace lepton::spec::internal
