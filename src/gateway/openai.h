// OpenAI-compatible traffic: the gateway passes it through untouched, except that it counts tokens
// per deployment from the `usage` object. On streams the upstream only sends usage when asked
// (`stream_options.include_usage`), so the gateway asks for it and removes the usage-only final
// chunk before the client sees it, when the client did not ask.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace lepton::gateway {

struct Usage {
  uint64_t prompt_tokens = 0;
  uint64_t completion_tokens = 0;
};

// Paths whose responses carry `usage`: .../completions (chat and legacy) and .../embeddings.
bool is_openai_path(std::string_view path);

// For a completion request with "stream": true that does not already ask for usage, the body with
// stream_options.include_usage set to true. nullopt means: forward the body unchanged (another
// path, not a stream, usage already asked for, or a body that is not a JSON object, malformed
// included: the upstream answers that, not the gateway).
std::optional<std::string> add_include_usage(std::string_view path, std::string_view body);

// `usage` from a JSON body (a whole response, or one SSE chunk); nullopt when it has none.
std::optional<Usage> usage_from_json(std::string_view body);

// Scans a server-sent-event stream as it passes, event by event, for `usage`. With
// `strip_usage_chunk`, events that carry usage and no choices (the final chunk include_usage adds)
// are dropped from the output, so complete events are held back until their blank line; without
// it every byte is passed on at once. An event larger than `max_event_bytes` ends the scanning
// and the rest of the stream passes through as it is: memory stays bounded.
class SseUsageScanner {
 public:
  explicit SseUsageScanner(bool strip_usage_chunk, size_t max_event_bytes = 256 * 1024)
      : strip_(strip_usage_chunk), max_event_bytes_(max_event_bytes) {}

  // Takes the next bytes from the upstream and appends to `out` what the client should get.
  void feed(std::string_view data, std::string& out);
  // End of the stream: appends whatever was held back.
  void finish(std::string& out);

  std::optional<Usage> usage() const { return usage_; }
  bool stripped() const { return stripped_; }

 private:
  // Handles one complete event (with its terminating blank line); returns false to drop it.
  bool on_event(std::string_view event);

  bool strip_;
  size_t max_event_bytes_;
  bool gave_up_ = false;
  bool stripped_ = false;
  std::string pending_;  // the bytes of the event being received
  std::optional<Usage> usage_;
};

}  // namespace lepton::gateway
