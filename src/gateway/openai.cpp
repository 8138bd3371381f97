#include "gateway/openai.h"

#include <nlohmann/json.hpp>

namespace lepton::gateway {

using nlohmann::json;

namespace {

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

std::string_view strip_query(std::string_view path) { return path.substr(0, path.find('?')); }

// Where the event that starts at `from` ends (just past its blank line), or npos.
size_t event_end(std::string_view s, size_t from) {
  for (size_t i = from; i < s.size(); ++i) {
    if (s[i] != '\n') continue;
    if (i + 1 < s.size() && s[i + 1] == '\n') return i + 2;
    if (i + 2 < s.size() && s[i + 1] == '\r' && s[i + 2] == '\n') return i + 3;
  }
  return std::string_view::npos;
}

}  // namespace

bool is_openai_path(std::string_view path) {
  path = strip_query(path);
  return ends_with(path, "/completions") || ends_with(path, "/embeddings");
}

std::optional<std::string> add_include_usage(std::string_view path, std::string_view body) {
  if (!ends_with(strip_query(path), "/completions")) return std::nullopt;
  // Cheap refusals first: most bodies are not streams.
  if (body.find("\"stream\"") == std::string_view::npos) return std::nullopt;
  json doc = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object()) return std::nullopt;
  auto stream = doc.find("stream");
  if (stream == doc.end() || !stream->is_boolean() || !stream->get<bool>()) return std::nullopt;
  auto options = doc.find("stream_options");
  if (options != doc.end() && !options->is_null()) {
    if (!options->is_object()) return std::nullopt;  // the upstream's to reject
    auto include = options->find("include_usage");
    if (include != options->end() && include->is_boolean() && include->get<bool>()) {
      return std::nullopt;
    }
    (*options)["include_usage"] = true;
  } else {
    doc["stream_options"] = json{{"include_usage", true}};
  }
  return doc.dump();
}

namespace {

std::optional<Usage> usage_from_doc(const json& doc) {
  if (!doc.is_object()) return std::nullopt;
  auto usage = doc.find("usage");
  if (usage == doc.end() || !usage->is_object()) return std::nullopt;
  Usage u;
  auto count = [&](const char* key) -> uint64_t {
    auto v = usage->find(key);
    return v != usage->end() && v->is_number_unsigned() ? v->get<uint64_t>() : 0;
  };
  u.prompt_tokens = count("prompt_tokens");
  u.completion_tokens = count("completion_tokens");
  return u;
}

}  // namespace

std::optional<Usage> usage_from_json(std::string_view body) {
  if (body.find("\"usage\"") == std::string_view::npos) return std::nullopt;
  json doc = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return std::nullopt;
  return usage_from_doc(doc);
}

void SseUsageScanner::feed(std::string_view data, std::string& out) {
  if (gave_up_) {
    out.append(data);
    return;
  }
  if (!strip_) out.append(data);
  size_t scan_from = pending_.empty() ? 0 : pending_.size() - 1;
  pending_.append(data);
  size_t start = 0;
  while (true) {
    size_t end = event_end(pending_, scan_from > start ? scan_from : start);
    if (end == std::string::npos) break;
    std::string_view event(pending_.data() + start, end - start);
    if (on_event(event) && strip_) out.append(event);
    start = end;
    scan_from = end;
  }
  pending_.erase(0, start);
  if (pending_.size() > max_event_bytes_) {
    gave_up_ = true;
    if (strip_) out.append(pending_);
    pending_.clear();
    pending_.shrink_to_fit();
  }
}

void SseUsageScanner::finish(std::string& out) {
  if (!pending_.empty() && !gave_up_) {
    bool keep = on_event(pending_);
    if (strip_ && keep) out.append(pending_);
  }
  pending_.clear();
}

bool SseUsageScanner::on_event(std::string_view event) {
  if (event.find("\"usage\"") == std::string_view::npos) return true;
  // The data lines, joined by '\n' as the SSE format says.
  std::string data;
  size_t pos = 0;
  while (pos < event.size()) {
    size_t nl = event.find('\n', pos);
    std::string_view line = event.substr(pos, nl == std::string_view::npos ? nl : nl - pos);
    pos = nl == std::string_view::npos ? event.size() : nl + 1;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.substr(0, 5) != "data:") continue;
    line.remove_prefix(5);
    if (!line.empty() && line.front() == ' ') line.remove_prefix(1);
    if (!data.empty()) data += '\n';
    data.append(line);
  }
  // Chunks before the last say "usage": null; skip parsing them.
  if (data.find("\"usage\":null") != std::string::npos ||
      data.find("\"usage\": null") != std::string::npos) {
    return true;
  }
  json doc = json::parse(data, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return true;
  std::optional<Usage> u = usage_from_doc(doc);
  if (!u) return true;
  usage_ = u;
  if (!strip_) return true;
  auto choices = doc.find("choices");
  bool no_choices = choices == doc.end() || (choices->is_array() && choices->empty());
  if (!no_choices) return true;
  stripped_ = true;
  return false;
}

void UsageTap::start(bool count, bool strip, std::string_view content_type,
                     std::optional<uint64_t> length, bool has_body) {
  reset();
  strip_ = strip;
  if (!count || !has_body) return;
  if (content_type.substr(0, 17) == "text/event-stream") {
    sse_.emplace(strip);
  } else if (content_type.find("json") != std::string_view::npos) {
    capture_json_ = !length || *length <= kMaxJsonBytes;
  }
}

std::string_view UsageTap::pass(std::string_view piece, bool last) {
  if (capture_json_) {
    if (capture_.size() + piece.size() <= kMaxJsonBytes) {
      capture_.append(piece);
    } else {
      capture_json_ = false;
      capture_.clear();
    }
  }
  if (!sse_) return piece;
  scratch_.clear();
  sse_->feed(piece, scratch_);
  if (last) sse_->finish(scratch_);
  return scratch_;
}

std::optional<Usage> UsageTap::usage() const {
  if (capture_json_ && !capture_.empty()) return usage_from_json(capture_);
  if (sse_) return sse_->usage();
  return std::nullopt;
}

void UsageTap::reset() {
  strip_ = false;
  sse_.reset();
  capture_json_ = false;
  capture_.clear();
}

}  // namespace lepton::gateway
