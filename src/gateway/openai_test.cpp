#include "gateway/openai.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <tuple>
#include <vector>

namespace lepton::gateway {
namespace {

using nlohmann::json;

TEST(OpenAiPath, RecognizesUsageEndpoints) {
  EXPECT_TRUE(is_openai_path("/v1/chat/completions"));
  EXPECT_TRUE(is_openai_path("/v1/completions?x=1"));
  EXPECT_TRUE(is_openai_path("/v1/embeddings"));
  EXPECT_FALSE(is_openai_path("/v1/models"));
  EXPECT_FALSE(is_openai_path("/hello"));
}

TEST(AddIncludeUsage, AddsToStreamedCompletions) {
  auto out =
      add_include_usage("/v1/chat/completions", R"({"model":"m","stream":true,"messages":[]})");
  ASSERT_TRUE(out.has_value());
  json doc = json::parse(*out);
  EXPECT_EQ(doc["stream_options"]["include_usage"], true);
  EXPECT_EQ(doc["model"], "m");

  out = add_include_usage("/v1/completions",
                          R"({"stream":true,"stream_options":{"include_usage":false,"x":1}})");
  ASSERT_TRUE(out.has_value());
  doc = json::parse(*out);
  EXPECT_EQ(doc["stream_options"]["include_usage"], true);
  EXPECT_EQ(doc["stream_options"]["x"], 1);

  out = add_include_usage("/v1/completions", R"({"stream":true,"stream_options":null})");
  ASSERT_TRUE(out.has_value());
  EXPECT_EQ(json::parse(*out)["stream_options"]["include_usage"], true);
}

TEST(AddIncludeUsage, LeavesOtherBodiesUnchanged) {
  const char* path = "/v1/chat/completions";
  EXPECT_FALSE(add_include_usage(path, R"({"stream":false})"));
  EXPECT_FALSE(add_include_usage(path, R"({"messages":[]})"));
  EXPECT_FALSE(add_include_usage(path, R"({"stream":"yes"})"));
  EXPECT_FALSE(
      add_include_usage(path, R"({"stream":true,"stream_options":{"include_usage":true}})"));
  EXPECT_FALSE(add_include_usage(path, R"({"stream":true,"stream_options":7})"));
  EXPECT_FALSE(add_include_usage("/v1/models", R"({"stream":true})"));
  // Malformed: passed through for the upstream to answer.
  EXPECT_FALSE(add_include_usage(path, R"({"stream":true,)"));
  EXPECT_FALSE(add_include_usage(path, R"(["stream", true])"));
  EXPECT_FALSE(add_include_usage(path, "\"stream\""));
  EXPECT_FALSE(add_include_usage(path, ""));
  EXPECT_FALSE(add_include_usage(path, std::string("{\"stream\":true\0}", 16)));
}

TEST(UsageFromJson, ReadsCounts) {
  auto u = usage_from_json(
      R"({"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":7,"total_tokens":12}})");
  ASSERT_TRUE(u.has_value());
  EXPECT_EQ(u->prompt_tokens, 5u);
  EXPECT_EQ(u->completion_tokens, 7u);
  EXPECT_FALSE(usage_from_json(R"({"usage":null})"));
  EXPECT_FALSE(usage_from_json(R"({"usage":)"));
  EXPECT_FALSE(usage_from_json("not json"));
}

const std::string kChunk =
    "data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}],\"usage\":null}\n\n";
const std::string kUsage =
    "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":2}}\n\n";
const std::string kDone = "data: [DONE]\n\n";

TEST(SseUsageScanner, PassesEverythingAndCountsWithoutStrip) {
  SseUsageScanner scanner(/*strip_usage_chunk=*/false);
  std::string stream = kChunk + kChunk + kUsage + kDone;
  std::string out;
  // Byte by byte: events split anywhere.
  for (char c : stream) scanner.feed(std::string_view(&c, 1), out);
  scanner.finish(out);
  EXPECT_EQ(out, stream);
  ASSERT_TRUE(scanner.usage().has_value());
  EXPECT_EQ(scanner.usage()->prompt_tokens, 3u);
  EXPECT_EQ(scanner.usage()->completion_tokens, 2u);
  EXPECT_FALSE(scanner.stripped());
}

TEST(SseUsageScanner, StripsTheUsageOnlyChunk) {
  SseUsageScanner scanner(/*strip_usage_chunk=*/true);
  std::string out;
  scanner.feed(kChunk + kChunk.substr(0, 10), out);
  EXPECT_EQ(out, kChunk);  // a partial event is held back
  scanner.feed(kChunk.substr(10) + kUsage.substr(0, 30), out);
  scanner.feed(kUsage.substr(30) + kDone, out);
  scanner.finish(out);
  EXPECT_EQ(out, kChunk + kChunk + kDone);
  EXPECT_TRUE(scanner.stripped());
  ASSERT_TRUE(scanner.usage().has_value());
  EXPECT_EQ(scanner.usage()->completion_tokens, 2u);
}

TEST(SseUsageScanner, HandlesCrlfAndKeepsChunksWithChoices) {
  SseUsageScanner scanner(/*strip_usage_chunk=*/true);
  // Usage on a chunk that still has choices (some servers do this): counted, never stripped.
  std::string with_choices =
      "data: {\"choices\":[{\"delta\":{}}],\"usage\":{\"prompt_tokens\":1,"
      "\"completion_tokens\":4}}\r\n\r\n";
  std::string out;
  scanner.feed(with_choices + "event: ping\r\ndata: x\r\n\r\n", out);
  scanner.finish(out);
  EXPECT_EQ(out, with_choices + "event: ping\r\ndata: x\r\n\r\n");
  ASSERT_TRUE(scanner.usage().has_value());
  EXPECT_EQ(scanner.usage()->completion_tokens, 4u);
}

TEST(SseUsageScanner, MalformedEventsPassThrough) {
  SseUsageScanner scanner(/*strip_usage_chunk=*/true);
  std::string bad = "data: {\"usage\": {broken\n\n";
  std::string out;
  scanner.feed(bad + "data: tail-without-blank-line", out);
  scanner.finish(out);
  EXPECT_EQ(out, bad + "data: tail-without-blank-line");
  EXPECT_FALSE(scanner.usage().has_value());
}

TEST(SseUsageScanner, GivesUpOnHugeEventsWithBoundedMemory) {
  SseUsageScanner scanner(/*strip_usage_chunk=*/true, /*max_event_bytes=*/64);
  std::string big(200, 'x');
  std::string out;
  scanner.feed("data: " + big, out);
  scanner.feed("\n\n" + kUsage, out);
  scanner.finish(out);
  EXPECT_EQ(out, "data: " + big + "\n\n" + kUsage);  // unchanged once scanning stopped
  EXPECT_FALSE(scanner.stripped());
}

// What the proxy does with one response body: UsageTap, fed the pieces the upstream sends.
std::string pass_all(UsageTap& tap, const std::vector<std::string>& pieces) {
  std::string out;
  for (size_t i = 0; i < pieces.size(); ++i) out += tap.pass(pieces[i], i + 1 == pieces.size());
  return out;
}

TEST(UsageTap, CountsAJsonBodyAtItsEnd) {
  UsageTap tap;
  tap.start(/*count=*/true, /*strip=*/false, "application/json; charset=utf-8", std::nullopt,
            /*has_body=*/true);
  EXPECT_FALSE(tap.edits());
  std::string body = R"({"usage":{"prompt_tokens":5,"completion_tokens":7}})";
  EXPECT_EQ(pass_all(tap, {body.substr(0, 9), body.substr(9)}), body);
  ASSERT_TRUE(tap.usage().has_value());
  EXPECT_EQ(tap.usage()->prompt_tokens, 5u);
  EXPECT_EQ(tap.usage()->completion_tokens, 7u);
}

TEST(UsageTap, AJsonBodyOverTheCapIsPassedUncounted) {
  UsageTap tap;
  const std::string body = R"({"usage":{"prompt_tokens":5,"completion_tokens":7}})";
  tap.start(true, false, "application/json", UsageTap::kMaxJsonBytes + 1, true);
  EXPECT_EQ(pass_all(tap, {body}), body);
  EXPECT_FALSE(tap.usage().has_value());
  // Without a length, it stops keeping the body once the body passes the cap.
  tap.start(true, false, "application/json", std::nullopt, true);
  pass_all(tap, {body, std::string(UsageTap::kMaxJsonBytes, ' ')});
  EXPECT_FALSE(tap.usage().has_value());
}

TEST(UsageTap, StripsTheUsageChunkOfAStreamOnlyWhenAsked) {
  UsageTap tap;
  tap.start(true, /*strip=*/true, "text/event-stream", std::nullopt, true);
  EXPECT_TRUE(tap.edits());  // the body changes: its length cannot be passed on
  EXPECT_EQ(pass_all(tap, {kChunk, kUsage.substr(0, 20), kUsage.substr(20) + kDone}),
            kChunk + kDone);
  ASSERT_TRUE(tap.usage().has_value());
  EXPECT_EQ(tap.usage()->completion_tokens, 2u);

  tap.start(true, /*strip=*/false, "text/event-stream", std::nullopt, true);
  EXPECT_FALSE(tap.edits());
  EXPECT_EQ(pass_all(tap, {kChunk, kUsage + kDone}), kChunk + kUsage + kDone);
  ASSERT_TRUE(tap.usage().has_value());
}

TEST(UsageTap, OtherResponsesPassUntouchedAndUncounted) {
  UsageTap tap;
  const std::string piece = R"({"usage":{"prompt_tokens":5,"completion_tokens":7}})";
  for (auto [count, type, has_body] :
       {std::tuple{false, "application/json", true}, std::tuple{true, "text/plain", true},
        std::tuple{true, "application/json", false}}) {
    tap.start(count, true, type, std::nullopt, has_body);
    EXPECT_FALSE(tap.edits());
    std::string_view out = tap.pass(piece, true);
    EXPECT_EQ(out.data(), piece.data());  // the piece itself, not a copy
    EXPECT_FALSE(tap.usage().has_value()) << type;
  }
}

TEST(UsageTap, ANewResponseForgetsTheLastOne) {
  UsageTap tap;
  tap.start(true, false, "application/json", std::nullopt, true);
  tap.pass(R"({"usage":{"prompt_tokens":5,"completion_tokens":7}})", true);
  ASSERT_TRUE(tap.usage().has_value());
  tap.start(true, false, "application/json", std::nullopt, true);
  EXPECT_FALSE(tap.usage().has_value());
  tap.reset();
  EXPECT_FALSE(tap.edits());
  EXPECT_FALSE(tap.usage().has_value());
}

}  // namespace
}  // namespace lepton::gateway
