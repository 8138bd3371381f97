// Test support: an Ec2Transport (aws_ec2_provider.h) that keeps instances as EC2 would, so a test
// can drive Ec2Provider through launches, listings and terminations that depend on each other.
// Its answers are the EC2 API Reference's published examples (src/cloud/testdata/ec2/, read from
// the folder given) with the instances' fields put in: the RunInstances and DescribeInstances
// envelopes, each instance written as the DescribeInstances example's instance with its id,
// type, state, zone, market and tags replaced, and the TerminateInstances example's item per
// instance. Not part of lepton itself.
//
// What it does as EC2 documents:
// - RunInstances launches MaxCount instances of InstanceType, tagged with the request's instance
//   tags; a ClientToken seen before answers with the instances it launched and launches nothing;
//   an instance type it was not told of is InvalidParameterValue;
// - DescribeInstances lists the instances with the tag of Filter.1 (tag:KEY = VALUE), one page;
// - TerminateInstances moves them to shutting-down (32); an unknown id is
//   InvalidInstanceID.NotFound and terminates nothing.
// Signatures are not checked (aws_sigv4_test.cpp and tests/aws_cloud_test.cpp do that).
#pragma once

#include <map>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "cloud/aws_ec2_provider.h"

namespace lepton::cloud::aws_testing {

class FakeEc2 {
 public:
  // `examples_dir`: the folder of the published examples (src/cloud/testdata/ec2);
  // `instance_types`: the types RunInstances accepts.
  FakeEc2(const std::string& examples_dir, std::set<std::string> instance_types);

  // Answers one request; every call may come from any thread.
  aws::Ec2Transport transport();

  // Requests answered so far, by action ("RunInstances", ...).
  int calls(const std::string& action) const;

 private:
  struct Machine {
    std::string id, type, market, zone;
    int state = 0;  // EC2 state codes: 0 pending, 32 shutting-down
    std::vector<std::pair<std::string, std::string>> tags;
  };
  aws::Ec2HttpResponse handle(const aws::HttpRequest& request);
  aws::Ec2HttpResponse run(std::map<std::string, std::string>& params);
  aws::Ec2HttpResponse describe(std::map<std::string, std::string>& params);
  aws::Ec2HttpResponse terminate(std::map<std::string, std::string>& params);
  std::string instance_xml(const Machine& m) const;

  std::string run_example_, describe_example_, terminate_example_, instance_example_;
  const std::set<std::string> instance_types_;
  mutable std::mutex mu_;
  std::vector<Machine> machines_;
  std::map<std::string, std::vector<std::string>> by_client_token_;
  std::map<std::string, int> calls_;
};

}  // namespace lepton::cloud::aws_testing
