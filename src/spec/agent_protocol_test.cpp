#include "spec/agent_protocol.h"

#include <gtest/gtest.h>

#include <random>
#include <string>

namespace lepton::spec {
namespace {

TEST(AgentProtocol, MessagesSurviveARoundTrip) {
  const AgentRegistration reg{.name = "gpu-1",
                              .cpu_milli = 8000,
                              .memory_mib = 32768,
                              .gpu_count = 4,
                              .gpu_model = "A100",
                              .address = "10.0.0.1"};
  auto r = decode_agent_registration(encode(reg));
  ASSERT_TRUE(r.is_ok()) << r.status().message();
  EXPECT_EQ(r->name, "gpu-1");
  EXPECT_EQ(r->cpu_milli, 8000);
  EXPECT_EQ(r->memory_mib, 32768);
  EXPECT_EQ(r->gpu_count, 4);
  EXPECT_EQ(r->gpu_model, "A100");
  EXPECT_EQ(r->address, "10.0.0.1");

  Heartbeat hb;
  hb.tasks.push_back(
      {.task = {"j-1", 1, 2}, .state = TaskReport::State::kExited, .exit_code = 3, .log_size = 10});
  hb.tasks.push_back({.task = {"j-2", 0, 0}, .state = TaskReport::State::kFenced, .exit_code = -1});
  hb.logs.push_back({.task = {"j-1", 1, 2}, .offset = 4, .data = "hello\n"});
  auto h = decode_heartbeat(encode(hb));
  ASSERT_TRUE(h.is_ok()) << h.status().message();
  ASSERT_EQ(h->tasks.size(), 2u);
  EXPECT_EQ(h->tasks[0].task, (TaskRef{"j-1", 1, 2}));
  EXPECT_EQ(h->tasks[0].state, TaskReport::State::kExited);
  EXPECT_EQ(h->tasks[0].exit_code, 3);
  EXPECT_EQ(h->tasks[0].log_size, 10);
  EXPECT_EQ(h->tasks[1].state, TaskReport::State::kFenced);
  ASSERT_EQ(h->logs.size(), 1u);
  EXPECT_EQ(h->logs[0].offset, 4);
  EXPECT_EQ(h->logs[0].data, "hello\n");

  HeartbeatReply reply;
  reply.timing = {.heartbeat_ms = 300, .lease_ms = 20000};
  reply.start.push_back({.task = {"j-3", 0, 1}, .script = "echo hi", .env = {{"A", "b"}}});
  reply.stop.push_back({.task = {"j-4", 0, 0}, .grace_ms = 5000, .notice = true});
  reply.stop.push_back({.task = {"j-5", 0, 0}, .grace_ms = std::nullopt, .notice = false});
  reply.log_offsets.push_back({.task = {"j-1", 1, 2}, .offset = 10});
  auto back = decode_heartbeat_reply(encode(reply));
  ASSERT_TRUE(back.is_ok()) << back.status().message();
  EXPECT_EQ(back->timing.heartbeat_ms, 300);
  EXPECT_EQ(back->timing.lease_ms, 20000);
  ASSERT_EQ(back->start.size(), 1u);
  EXPECT_EQ(back->start[0].script, "echo hi");
  EXPECT_EQ(back->start[0].env.at("A"), "b");
  ASSERT_EQ(back->stop.size(), 2u);
  EXPECT_EQ(back->stop[0].grace_ms, 5000);
  EXPECT_TRUE(back->stop[0].notice);
  EXPECT_FALSE(back->stop[1].grace_ms.has_value());
  EXPECT_FALSE(back->stop[1].notice);
  ASSERT_EQ(back->log_offsets.size(), 1u);
  EXPECT_EQ(back->log_offsets[0].offset, 10);

  auto reg_reply = decode_registration_reply(
      encode(RegistrationReply{.name = "gpu-1", .timing = {.heartbeat_ms = 50, .lease_ms = 0}}));
  ASSERT_TRUE(reg_reply.is_ok());
  EXPECT_EQ(reg_reply->timing.heartbeat_ms, 50);
}

TEST(AgentProtocol, OutputThatIsNotUtf8IsSentWithReplacements) {
  Heartbeat hb;
  hb.logs.push_back({.task = {"j-1", 0, 0}, .offset = 0, .data = std::string("a\xff\xfe b")});
  auto h = decode_heartbeat(encode(hb));
  ASSERT_TRUE(h.is_ok()) << h.status().message();
  EXPECT_EQ(h->logs[0].data, "a\xEF\xBF\xBD\xEF\xBF\xBD b");
}

TEST(AgentProtocol, ErrorsNameTheField) {
  const std::pair<const char*, const char*> cases[] = {
      {"not json", "body: expected a JSON object"},
      {"[1]", "body: expected a JSON object"},
      {R"({"tasks":5})", "tasks: expected an array"},
      {R"({"tasks":[5]})", "tasks: expected a JSON object"},
      {R"({"tasks":[{"job_id":"j","rank":0,"attempt":0,"state":"DANCING"}]})",
       "tasks.state: expected RUNNING, EXITED, GONE or FENCED, got 'DANCING'"},
      {R"({"tasks":[{"job_id":"j","attempt":0,"state":"RUNNING"}]})", "tasks.rank: missing"},
      {R"({"tasks":[{"job_id":"../x","rank":0,"attempt":0,"state":"RUNNING"}]})",
       "tasks.job_id: expected 1 to 128 characters of A-Z a-z 0-9 . _ - not starting with '.'"},
      {R"({"tasks":[{"job_id":"j","rank":-1,"attempt":0,"state":"RUNNING"}]})",
       "tasks.rank: expected 0 to 1000000"},
      {R"({"tasks":[{"job_id":"j","rank":18446744073709551615,"attempt":0,"state":"RUNNING"}]})",
       "tasks.rank: expected 0 to 1000000"},
      {R"({"logs":[{"job_id":"j","rank":0,"attempt":0,"offset":"x","data":""}]})",
       "logs.offset: wrong type; expected an integer"},
      {R"({"logs":[{"job_id":"j","rank":0,"attempt":0,"offset":0}]})", "logs.data: missing"},
  };
  for (const auto& [text, error] : cases) {
    auto h = decode_heartbeat(text);
    ASSERT_FALSE(h.is_ok()) << text;
    EXPECT_EQ(h.status().message(), error) << text;
  }
  EXPECT_EQ(decode_agent_registration(R"({"name":"n"})").status().message(), "cpu_milli: missing");
  EXPECT_EQ(decode_agent_registration(
                R"({"name":"","cpu_milli":1,"memory_mib":1,"gpu_count":0,"gpu_model":""})")
                .status()
                .message(),
            "name: expected 1 to 253 characters");
  EXPECT_EQ(
      decode_heartbeat_reply(R"({"start":[{"job_id":"j","env":{"A":1}}]})").status().message(),
      "start.env.A: expected a string");
  EXPECT_EQ(
      decode_heartbeat_reply(R"({"stop":[{"job_id":"j","grace_ms":"x"}]})").status().message(),
      "stop.grace_ms: wrong type; expected an integer");
  EXPECT_EQ(decode_heartbeat_reply(R"({"heartbeat_ms":-5})").status().message(),
            "heartbeat_ms: expected 0 to 3600000");
  EXPECT_FALSE(decode_heartbeat(std::string(kMaxAgentMessageBytes + 1, ' ')).is_ok());
}

// Mutated messages are answered with a value or an error, never a crash; what decodes encodes
// and decodes to the same message.
TEST(AgentProtocol, MutatedMessagesNeverCrashTheDecoder) {
  Heartbeat hb;
  hb.tasks.push_back({.task = {"j-1", 1, 2}, .state = TaskReport::State::kExited, .exit_code = 3});
  hb.logs.push_back({.task = {"j-1", 1, 2}, .offset = 4, .data = "hello"});
  const std::string base = encode(hb);
  const std::string alphabet = "{}[]\":,0123456789-.aetrunlfsEXITD ";
  std::mt19937 rng(7);
  int ok = 0;
  for (int i = 0; i < 5000; ++i) {
    std::string text = base;
    for (int k = 0; k < 3; ++k) {
      const size_t at = rng() % text.size();
      text[at] = alphabet[rng() % alphabet.size()];
    }
    auto h = decode_heartbeat(text);
    (void)decode_heartbeat_reply(text);
    (void)decode_agent_registration(text);
    if (!h.is_ok()) continue;
    ++ok;
    auto again = decode_heartbeat(encode(*h));
    ASSERT_TRUE(again.is_ok()) << text;
    EXPECT_EQ(encode(*again), encode(*h));
  }
  EXPECT_GT(ok, 0);
}

}  // namespace
}  // namespace lepton::spec
