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

// One response's tokens, counted as its body passes: a server-sent-event stream is scanned event
// by event (the usage-only final chunk removed when the gateway asked for it), and a JSON body of
// at most kMaxJsonBytes is kept and parsed at its end; anything else passes untouched.
class UsageTap {
 public:
  // JSON responses up to this size are parsed for `usage`; larger ones pass uncounted.
  static constexpr size_t kMaxJsonBytes = 1 << 20;

  // A new response to a request whose path `is_openai_path` (`count`), and whose body was
  // rewritten by add_include_usage (`strip`: the usage-only chunk is the gateway's to remove).
  // Forgets the previous response.
  void start(bool count, bool strip, std::string_view content_type, std::optional<uint64_t> length,
             bool has_body);
  // Whether the body the client gets may differ from the upstream's (so its length is unknown).
  bool edits() const { return sse_.has_value() && strip_; }
  // The next piece of the body (`last`: the end of it); returns what goes to the client: `piece`
  // itself, or the scanner's output, valid until the next call.
  std::string_view pass(std::string_view piece, bool last);
  // The usage seen, once the body has passed whole.
  std::optional<Usage> usage() const;
  // Forgets the response (and frees nothing: buffers are kept for the next one).
  void reset();

 private:
  bool strip_ = false;
  std::optional<SseUsageScanner> sse_;
  bool capture_json_ = false;  // the body is a JSON one, kept in capture_ while it fits
  std::string capture_;
  std::string scratch_;  // the scanner's output for the last piece
};

}  // namespace lepton::gateway
