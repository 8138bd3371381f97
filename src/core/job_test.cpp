#include "core/job.h"

#include <gtest/gtest.h>

namespace lepton {
namespace {

JobSpec valid() {
  JobSpec s;
  s.name = "train-1";
  s.resources = Resources{4000, 16384, 1, 500};
  s.run = "echo hi";
  return s;
}

TEST(JobSpec, ValidateNamesTheField) {
  EXPECT_TRUE(validate_job_spec(valid()).is_ok());
  auto expect_field = [](JobSpec s, const std::string& field) {
    Status st = validate_job_spec(s);
    EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(st.message().rfind(field, 0), 0u) << st.message();
  };
  JobSpec s = valid();
  s.name = "Train";
  expect_field(s, "name:");
  s = valid();
  s.name = std::string(64, 'a');
  expect_field(s, "name:");
  s = valid();
  s.num_nodes = 0;
  expect_field(s, "num_nodes:");
  s = valid();
  s.run.clear();
  expect_field(s, "run:");
  s = valid();
  s.max_restarts = -1;
  expect_field(s, "max_restarts:");
  s = valid();
  s.resources.gpu_milli = 2000;
  expect_field(s, "resources.gpu_milli");
  s = valid();
  s.envs["1BAD"] = "x";
  expect_field(s, "envs.1BAD:");
}

TEST(JobState, NamesRoundTrip) {
  for (JobState st :
       {JobState::kPending, JobState::kScheduled, JobState::kStarting, JobState::kRunning,
        JobState::kSucceeded, JobState::kFailed, JobState::kCancelled}) {
    EXPECT_EQ(parse_job_state(job_state_name(st)), st);
  }
  EXPECT_FALSE(parse_job_state("DONE").has_value());
  EXPECT_TRUE(is_terminal(JobState::kFailed));
  EXPECT_FALSE(is_terminal(JobState::kRunning));
}

}  // namespace
}  // namespace lepton
