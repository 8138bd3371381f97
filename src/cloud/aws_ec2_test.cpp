#include "cloud/aws_ec2.h"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "cloud/aws_ec2_provider.h"

namespace lepton::cloud::aws {
namespace {

// The example responses under testdata/ec2/ are copied from Amazon's EC2 API Reference; the
// README there names the page of each. Expected values below are read off those documents.
std::string example(const std::string& name) {
  std::ifstream in(std::string(LEPTON_SOURCE_DIR) + "/src/cloud/testdata/ec2/" + name);
  EXPECT_TRUE(in.good()) << name;
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// The documented error document (errors-overview.html) with another documented code in it.
std::string error_document(std::string_view code, std::string_view message) {
  return "<Response>\n    <Errors>\n         <Error>\n           <Code>" + std::string(code) +
         "</Code>\n           <Message>" + std::string(message) +
         "</Message>\n         </Error>\n    </Errors>\n"
         "    <RequestID>ea966190-f9aa-478e-9ede-example</RequestID>\n</Response>\n";
}

const Credentials kExampleCredentials{"AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
                                      ""};

TEST(Ec2Responses, RunInstancesExample) {
  auto r = parse_run_instances_response(example("run_instances.xml"));
  ASSERT_TRUE(r.is_ok()) << r.status().message();
  EXPECT_EQ(r->request_id, "59dbff89-35bd-4eac-99ed-be587EXAMPLE");
  EXPECT_EQ(r->reservation_id, "r-47a5402e");
  EXPECT_EQ(r->owner_id, "999988887777");
  ASSERT_EQ(r->instances.size(), 3u);
  const Ec2Instance& first = r->instances[0];
  EXPECT_EQ(first.instance_id, "i-2ba64342");
  EXPECT_EQ(first.image_id, "ami-60a54009");
  EXPECT_EQ(first.instance_type, "m1.small");
  EXPECT_EQ(first.state.code, 0);
  EXPECT_EQ(first.state.name, "pending");
  EXPECT_EQ(first.availability_zone, "us-east-1b");
  EXPECT_EQ(first.launch_time, "2007-08-07T11:51:50.000Z");
  EXPECT_EQ(first.lifecycle, "");
  EXPECT_TRUE(first.tags.empty());
  // The private address is the network interface's; the instance element has none here.
  EXPECT_EQ(first.private_ip, "");
  EXPECT_EQ(r->instances[1].instance_id, "i-2bc64242");
  EXPECT_EQ(r->instances[2].instance_id, "i-2be64332");
}

TEST(Ec2Responses, DescribeInstancesExample) {
  auto r = parse_describe_instances_response(example("describe_instances.xml"));
  ASSERT_TRUE(r.is_ok()) << r.status().message();
  EXPECT_EQ(r->request_id, "8f7724cf-496f-496e-8fe3-example");
  EXPECT_EQ(r->next_token, "");
  ASSERT_EQ(r->instances.size(), 1u);
  const Ec2Instance& i = r->instances[0];
  EXPECT_EQ(i.instance_id, "i-1234567890abcdef0");
  EXPECT_EQ(i.image_id, "ami-bff32ccc");
  EXPECT_EQ(i.instance_type, "t2.micro");
  EXPECT_EQ(i.state.code, 16);
  EXPECT_EQ(i.state.name, "running");
  EXPECT_EQ(i.availability_zone, "eu-west-1c");
  EXPECT_EQ(i.private_ip, "192.168.1.88");
  EXPECT_EQ(i.public_ip, "54.194.252.215");
  EXPECT_EQ(i.launch_time, "2018-05-08T16:46:19.000Z");
  EXPECT_EQ(i.lifecycle, "");
  EXPECT_EQ(i.tags, (std::vector<Tag>{{"Name", "Server_1"}}));
}

TEST(Ec2Responses, DescribeInstancesSpotExample) {
  auto r = parse_describe_instances_response(example("describe_instances_spot.xml"));
  ASSERT_TRUE(r.is_ok()) << r.status().message();
  ASSERT_EQ(r->instances.size(), 2u);  // one per reservation
  EXPECT_EQ(r->instances[0].instance_id, "i-c5cd56af");
  EXPECT_EQ(r->instances[0].lifecycle, "spot");
  EXPECT_EQ(r->instances[0].spot_instance_request_id, "sir-7a688402");
  EXPECT_EQ(r->instances[0].public_ip, "174.129.165.232");
  EXPECT_EQ(r->instances[1].instance_id, "i-d9cd56b3");
  EXPECT_EQ(r->instances[1].instance_type, "m1.large");
  EXPECT_EQ(r->instances[1].spot_instance_request_id, "sir-55a3aa02");
}

TEST(Ec2Responses, TerminateInstancesExample) {
  auto r = parse_terminate_instances_response(example("terminate_instances.xml"));
  ASSERT_TRUE(r.is_ok()) << r.status().message();
  EXPECT_EQ(r->request_id, "59dbff89-35bd-4eac-99ed-be587EXAMPLE");
  ASSERT_EQ(r->instances.size(), 1u);
  EXPECT_EQ(r->instances[0].instance_id, "i-1234567890abcdef0");
  EXPECT_EQ(r->instances[0].current.code, 32);
  EXPECT_EQ(r->instances[0].current.name, "shutting-down");
  EXPECT_EQ(r->instances[0].previous.code, 16);
  EXPECT_EQ(r->instances[0].previous.name, "running");
}

TEST(Ec2Responses, ErrorResponseExample) {
  auto r = parse_error_response(example("error_response.xml"));
  ASSERT_TRUE(r.is_ok()) << r.status().message();
  EXPECT_EQ(r->request_id, "ea966190-f9aa-478e-9ede-example");
  ASSERT_EQ(r->errors.size(), 1u);
  EXPECT_EQ(r->errors[0].code, "InvalidInstanceID.NotFound");
  EXPECT_EQ(r->errors[0].message, "The instance ID 'i-1a2b3c4d' does not exist");
  EXPECT_EQ(r->errors[0].error_class, Ec2ErrorClass::kOther);
  const Status s = ec2_error_status("TerminateInstances", r.value());
  EXPECT_EQ(s.code(), StatusCode::kInternal);
  EXPECT_EQ(s.message(),
            "aws ec2 TerminateInstances: InvalidInstanceID.NotFound (other): The instance ID "
            "'i-1a2b3c4d' does not exist [request ea966190-f9aa-478e-9ede-example]");
}

TEST(Ec2Responses, ErrorCodesAreClassifiedForFailover) {
  // Codes from the EC2 API Reference, "Error codes for the Amazon EC2 API".
  for (std::string_view code :
       {"InsufficientInstanceCapacity", "InsufficientCapacity", "InsufficientHostCapacity",
        "InsufficientReservedInstanceCapacity", "Unsupported", "SpotMaxPriceTooLow",
        "Server.InsufficientInstanceCapacity"}) {
    EXPECT_EQ(classify_ec2_error(code), Ec2ErrorClass::kCapacity) << code;
  }
  for (std::string_view code : {"InstanceLimitExceeded", "VcpuLimitExceeded",
                                "MaxSpotInstanceCountExceeded", "Client.VcpuLimitExceeded"}) {
    EXPECT_EQ(classify_ec2_error(code), Ec2ErrorClass::kQuota) << code;
  }
  for (std::string_view code : {"InvalidInstanceID.NotFound", "AuthFailure", "RequestLimitExceeded",
                                "InternalError", "UnsupportedOperation", "InvalidParameterValue"}) {
    EXPECT_EQ(classify_ec2_error(code), Ec2ErrorClass::kOther) << code;
  }
}

TEST(Ec2Responses, CapacityAndQuotaErrorsBecomeTheFailoverStatusCodes) {
  auto capacity = parse_error_response(error_document(
      "InsufficientInstanceCapacity", "There is not enough capacity to fulfill your request."));
  ASSERT_TRUE(capacity.is_ok()) << capacity.status().message();
  EXPECT_EQ(ec2_error_status("RunInstances", capacity.value()).code(), StatusCode::kUnavailable);

  auto quota = parse_error_response(error_document(
      "VcpuLimitExceeded", "You have requested more vCPU capacity than your current vCPU limit."));
  ASSERT_TRUE(quota.is_ok());
  EXPECT_EQ(ec2_error_status("RunInstances", quota.value()).code(), StatusCode::kResourceExhausted);

  auto auth = parse_error_response(error_document("AuthFailure", "not authorized"));
  ASSERT_TRUE(auth.is_ok());
  EXPECT_EQ(ec2_error_status("RunInstances", auth.value()).code(), StatusCode::kPermissionDenied);

  // Throttling is not an answer about capacity: the offer is not skipped, and the autoscaler lets
  // the provider rest before it calls again (ProviderBackoff).
  auto throttled =
      parse_error_response(error_document("RequestLimitExceeded", "Request limit exceeded."));
  ASSERT_TRUE(throttled.is_ok());
  EXPECT_EQ(ec2_error_status("RunInstances", throttled.value()).code(), StatusCode::kInternal);

  // An error document where a RunInstancesResponse was expected says what the error was.
  auto run = parse_run_instances_response(
      error_document("SpotMaxPriceTooLow", "Your Spot request price is lower than the minimum."));
  ASSERT_FALSE(run.is_ok());
  EXPECT_EQ(run.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(run.status().message(),
            "aws ec2 RunInstances: SpotMaxPriceTooLow (capacity): Your Spot request price is "
            "lower than the minimum. [request ea966190-f9aa-478e-9ede-example]");
}

TEST(Ec2Responses, MalformedResponsesAreClearErrors) {
  const std::string run = example("run_instances.xml");
  auto truncated = parse_run_instances_response(run.substr(0, run.size() / 2));
  ASSERT_FALSE(truncated.is_ok());
  EXPECT_EQ(truncated.status().message().rfind("ec2 response: xml:", 0), 0u)
      << truncated.status().message();

  auto wrong_root = parse_terminate_instances_response(run);
  ASSERT_FALSE(wrong_root.is_ok());
  EXPECT_EQ(wrong_root.status().message(),
            "ec2 response: document: expected root element <TerminateInstancesResponse>, got "
            "<RunInstancesResponse>");

  auto no_id = parse_describe_instances_response(
      "<DescribeInstancesResponse><reservationSet><item><instancesSet><item>"
      "<instanceState><code>16</code><name>running</name></instanceState>"
      "</item></instancesSet></item></reservationSet></DescribeInstancesResponse>");
  ASSERT_FALSE(no_id.is_ok());
  EXPECT_EQ(no_id.status().message(),
            "ec2 response: DescribeInstancesResponse/reservationSet/item[1]/instancesSet/item[1]: "
            "expected element <instanceId> with an id");

  auto bad_code = parse_terminate_instances_response(
      "<TerminateInstancesResponse><instancesSet><item><instanceId>i-1</instanceId>"
      "<currentState><code>x32</code><name>shutting-down</name></currentState>"
      "</item></instancesSet></TerminateInstancesResponse>");
  ASSERT_FALSE(bad_code.is_ok());
  EXPECT_EQ(bad_code.status().message(),
            "ec2 response: TerminateInstancesResponse/instancesSet/item[1]/currentState/code: "
            "expected an integer, got 'x32'");

  auto no_state = parse_run_instances_response(
      "<RunInstancesResponse><instancesSet><item><instanceId>i-1</instanceId></item>"
      "</instancesSet></RunInstancesResponse>");
  ASSERT_FALSE(no_state.is_ok());
  EXPECT_EQ(no_state.status().message(),
            "ec2 response: RunInstancesResponse/instancesSet/item[1]: expected element "
            "<instanceState>");

  auto no_errors = parse_error_response("<Response><Errors/></Response>");
  ASSERT_FALSE(no_errors.is_ok());
  EXPECT_EQ(no_errors.status().message(),
            "ec2 response: Response/Errors: expected at least one <Error>");
}

TEST(Ec2Requests, RunInstancesParameters) {
  RunInstancesParams p;
  p.image_id = "ami-60a54009";
  p.instance_type = "p5.48xlarge";
  p.min_count = 1;
  p.max_count = 2;
  p.user_data =
      "#!/bin/bash\ncurl -fsSL https://lepton.example/agent.sh | sh -s -- --server 10.0.0.1:8080\n";
  p.spot = true;
  p.spot_max_price = "12.5";
  p.tags = {{"lepton-pool", "default"}, {"Name", "gpu 1"}};
  p.subnet_id = "subnet-56f5f633";
  p.security_group_ids = {"sg-e4076980"};
  p.client_token = "job-42";
  auto params = run_instances_params(p);
  ASSERT_TRUE(params.is_ok()) << params.status().message();
  // Parameter names as in the RunInstances API Reference (Query API, version 2016-11-15). The
  // UserData value was encoded with coreutils base64, not with this code.
  const NameValues expected = {
      {"Action", "RunInstances"},
      {"ImageId", "ami-60a54009"},
      {"InstanceType", "p5.48xlarge"},
      {"MinCount", "1"},
      {"MaxCount", "2"},
      {"UserData",
       "IyEvYmluL2Jhc2gKY3VybCAtZnNTTCBodHRwczovL2xlcHRvbi5leGFtcGxlL2FnZW50LnNoIHwgc2ggLXMgLS0gLS1"
       "zZXJ2ZXIgMTAuMC4wLjE6ODA4MAo="},
      {"InstanceMarketOptions.MarketType", "spot"},
      {"InstanceMarketOptions.SpotOptions.SpotInstanceType", "one-time"},
      {"InstanceMarketOptions.SpotOptions.InstanceInterruptionBehavior", "terminate"},
      {"InstanceMarketOptions.SpotOptions.MaxPrice", "12.5"},
      {"TagSpecification.1.ResourceType", "instance"},
      {"TagSpecification.1.Tag.1.Key", "lepton-pool"},
      {"TagSpecification.1.Tag.1.Value", "default"},
      {"TagSpecification.1.Tag.2.Key", "Name"},
      {"TagSpecification.1.Tag.2.Value", "gpu 1"},
      {"TagSpecification.2.ResourceType", "volume"},
      {"TagSpecification.2.Tag.1.Key", "lepton-pool"},
      {"TagSpecification.2.Tag.1.Value", "default"},
      {"TagSpecification.2.Tag.2.Key", "Name"},
      {"TagSpecification.2.Tag.2.Value", "gpu 1"},
      {"SubnetId", "subnet-56f5f633"},
      {"SecurityGroupId.1", "sg-e4076980"},
      {"ClientToken", "job-42"},
  };
  EXPECT_EQ(params.value(), expected);

  RunInstancesParams bad = p;
  bad.max_count = 0;
  EXPECT_EQ(run_instances_params(bad).status().message(),
            "RunInstances: expected 1 <= min_count <= max_count, got 1 and 0");
  bad = p;
  bad.user_data = std::string(16385, 'x');
  EXPECT_EQ(run_instances_params(bad).status().message(),
            "RunInstances: user_data is 16385 bytes; EC2 accepts at most 16384");
  bad = p;
  bad.spot = false;
  EXPECT_EQ(run_instances_params(bad).status().message(),
            "RunInstances: spot_max_price is set but spot is not");
}

TEST(Ec2Requests, SignedFormPostToTheRegionalEndpoint) {
  auto params = terminate_instances_params({"i-1234567890abcdef0"});
  ASSERT_TRUE(params.is_ok());
  auto request =
      build_ec2_request(params.value(), "us-east-1", kExampleCredentials, "20150830T123600Z");
  ASSERT_TRUE(request.is_ok()) << request.status().message();
  EXPECT_EQ(request->method, "POST");
  EXPECT_EQ(request->path, "/");
  EXPECT_TRUE(request->query.empty());
  EXPECT_EQ(request->body,
            "Action=TerminateInstances&InstanceId.1=i-1234567890abcdef0&Version=2016-11-15");
  ASSERT_EQ(request->headers.size(), 4u);
  EXPECT_EQ(request->headers[0],
            (std::pair<std::string, std::string>("Host", "ec2.us-east-1.amazonaws.com")));
  EXPECT_EQ(request->headers[1].second, "application/x-www-form-urlencoded; charset=utf-8");
  EXPECT_EQ(request->headers[2],
            (std::pair<std::string, std::string>("X-Amz-Date", "20150830T123600Z")));
  // No published signature exists for this request, so only its form is checked here; the
  // signing itself is checked against AWS's vectors in aws_sigv4_test.cpp.
  const std::string& authorization = request->headers[3].second;
  const std::string prefix =
      "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/ec2/aws4_request, "
      "SignedHeaders=content-type;host;x-amz-date, Signature=";
  ASSERT_EQ(authorization.rfind(prefix, 0), 0u) << authorization;
  EXPECT_EQ(authorization.size(), prefix.size() + 64);

  EXPECT_EQ(terminate_instances_params({}).status().message(),
            "TerminateInstances: expected at least one instance id");
  EXPECT_EQ(describe_instances_params({{}, {{"lepton-pool", "default"}}, "tok"}),
            (NameValues{{"Action", "DescribeInstances"},
                        {"Filter.1.Name", "tag:lepton-pool"},
                        {"Filter.1.Value.1", "default"},
                        {"NextToken", "tok"}}));
}

// A transport that answers from a script of responses and keeps the requests it was sent.
struct FakeEc2 {
  std::vector<Ec2HttpResponse> responses;
  std::vector<HttpRequest> requests;
  Ec2Transport transport() {
    return [this](const HttpRequest& r) -> Result<Ec2HttpResponse> {
      requests.push_back(r);
      if (requests.size() > responses.size()) return Status::internal("no scripted response");
      return responses[requests.size() - 1];
    };
  }
};

Ec2Clock fixed_clock() {
  return [] {
    using namespace std::chrono;
    return sys_seconds(sys_days(year(2015) / 8 / 30) + hours(12) + minutes(36));
  };
}

Offer offer(std::string instance_type, std::string region, std::optional<double> spot) {
  Offer o;
  o.cloud = "aws";
  o.instance_type = std::move(instance_type);
  o.gpu_model = "H100";
  o.gpu_count = 8;
  o.price_per_hour = 98.32;
  o.spot_price_per_hour = spot;
  o.region = std::move(region);
  return o;
}

Ec2ProviderConfig config() {
  Ec2ProviderConfig c;
  c.region = "us-east-1";
  c.credentials = kExampleCredentials;
  c.image_id = "ami-60a54009";
  c.subnet_id = "subnet-56f5f633";
  return c;
}

TEST(Ec2ProviderTest, ProvisionSendsRunInstancesAndReadsTheAnswer) {
  FakeEc2 fake;
  fake.responses = {{200, example("run_instances.xml")}};
  Ec2Provider provider(config(), {}, fake.transport(), fixed_clock());
  ProvisionRequest request;
  request.offer = offer("m1.small", "us-east-1", 0.01);
  request.spot = true;
  request.bootstrap_script = "exec lepton agent\n";
  request.labels = {{"job", "42"}};
  auto instances = provider.provision(request);
  ASSERT_TRUE(instances.is_ok()) << instances.status().message();
  ASSERT_EQ(instances->size(), 3u);
  EXPECT_EQ((*instances)[0].id, "i-2ba64342");
  EXPECT_EQ((*instances)[0].state, cloud::InstanceState::kPending);
  EXPECT_EQ((*instances)[0].zone, "us-east-1b");
  EXPECT_EQ((*instances)[0].cloud, "aws");
  ASSERT_EQ(fake.requests.size(), 1u);
  const std::string& body = fake.requests[0].body;
  EXPECT_NE(body.find("Action=RunInstances&"), std::string::npos) << body;
  EXPECT_NE(body.find("InstanceMarketOptions.MarketType=spot"), std::string::npos) << body;
  EXPECT_NE(body.find("TagSpecification.1.Tag.1.Key=lepton-pool"), std::string::npos) << body;
  EXPECT_NE(body.find("TagSpecification.1.Tag.2.Key=job"), std::string::npos) << body;
  // The user data is the metadata preamble, then the bootstrap script, base64-encoded (base64 is
  // checked against coreutils above) and form-encoded.
  const std::string user_data = ec2_user_data("exec lepton agent\n");
  EXPECT_TRUE(user_data.starts_with("#!/bin/sh\n")) << user_data;
  EXPECT_NE(user_data.find("X-aws-ec2-metadata-token-ttl-seconds"), std::string::npos);
  EXPECT_NE(user_data.find("/meta-data/instance-id"), std::string::npos);
  EXPECT_TRUE(user_data.ends_with("\nexport LEPTON_INSTANCE_ID\nexec lepton agent\n"));
  std::string encoded;
  for (char c : base64_encode(user_data)) {
    encoded += c == '+'   ? std::string("%2B")
               : c == '/' ? std::string("%2F")
               : c == '=' ? std::string("%3D")
                          : std::string(1, c);
  }
  EXPECT_NE(body.find("UserData=" + encoded), std::string::npos) << body;
}

TEST(Ec2ProviderTest, CapacityErrorFromEc2IsUnavailable) {
  FakeEc2 fake;
  fake.responses = {{500, error_document("InsufficientInstanceCapacity",
                                         "There is not enough capacity to fulfill your request.")}};
  Ec2Provider provider(config(), {}, fake.transport(), fixed_clock());
  ProvisionRequest request;
  request.offer = offer("p5.48xlarge", "us-east-1", std::nullopt);
  auto instances = provider.provision(request);
  ASSERT_FALSE(instances.is_ok());
  EXPECT_EQ(instances.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(instances.status().message(),
            "aws ec2 RunInstances: InsufficientInstanceCapacity (capacity): There is not enough "
            "capacity to fulfill your request. [request ea966190-f9aa-478e-9ede-example]");

  request.spot = true;
  EXPECT_EQ(provider.provision(request).status().message(),
            "aws ec2: p5.48xlarge has no spot price in the catalog");
  request.offer.region = "eu-west-1";
  EXPECT_EQ(provider.provision(request).status().message(),
            "aws ec2: offer is in region 'eu-west-1', this provider launches in 'us-east-1'");
  EXPECT_EQ(fake.requests.size(), 1u);  // the invalid requests never reached the transport
}

TEST(Ec2ProviderTest, NonEc2ErrorBodyAndTransportFailure) {
  FakeEc2 fake;
  fake.responses = {{503, "<html>Service Unavailable</html>"}};
  Ec2Provider provider(config(), {}, fake.transport(), fixed_clock());
  const Status s = provider.terminate({"i-1"});
  EXPECT_EQ(s.code(), StatusCode::kInternal);
  EXPECT_EQ(s.message(),
            "aws ec2 TerminateInstances: HTTP 503 without an EC2 error document: ec2 response: "
            "document: expected root element <Response>, got <html>");
  // EC2 not reached: an error of its own, not a capacity answer.
  const Status unreached = provider.terminate({"i-1"});
  EXPECT_EQ(unreached.code(), StatusCode::kInternal);
  EXPECT_EQ(unreached.message(), "aws ec2 TerminateInstances: no scripted response");
}

TEST(Ec2ProviderTest, TerminateAndListFollowPages) {
  std::string first_page = example("describe_instances.xml");
  const std::string close = "</DescribeInstancesResponse>";
  first_page.replace(first_page.find(close), close.size(),
                     "<nextToken>page-2</nextToken>\n" + close);
  FakeEc2 fake;
  fake.responses = {{200, example("terminate_instances.xml")},
                    {200, first_page},
                    {200, example("describe_instances_spot.xml")}};
  Ec2Provider provider(config(), {}, fake.transport(), fixed_clock());
  ASSERT_TRUE(provider.terminate({"i-1234567890abcdef0"}).is_ok());
  auto instances = provider.list_instances();
  ASSERT_TRUE(instances.is_ok()) << instances.status().message();
  ASSERT_EQ(instances->size(), 3u);
  EXPECT_EQ((*instances)[0].id, "i-1234567890abcdef0");
  EXPECT_EQ((*instances)[0].state, cloud::InstanceState::kRunning);
  EXPECT_FALSE((*instances)[0].spot);
  EXPECT_EQ((*instances)[0].labels, (Labels{{"Name", "Server_1"}}));
  EXPECT_TRUE((*instances)[1].spot);
  ASSERT_EQ(fake.requests.size(), 3u);
  EXPECT_EQ(fake.requests[1].body,
            "Action=DescribeInstances&Filter.1.Name=tag%3Alepton-pool&Filter.1.Value.1=default&"
            "Version=2016-11-15");
  EXPECT_EQ(fake.requests[2].body,
            "Action=DescribeInstances&Filter.1.Name=tag%3Alepton-pool&Filter.1.Value.1=default&"
            "NextToken=page-2&Version=2016-11-15");
}

TEST(Ec2ProviderTest, SpotTerminationsAreInterruptionNotices) {
  // The spot example with a state reason added to its first instance; the code is one of the
  // StateReason codes of the EC2 API Reference.
  std::string page = example("describe_instances_spot.xml");
  const std::string marker = "<instanceLifecycle>spot</instanceLifecycle>";
  page.replace(page.find(marker), marker.size(),
               marker +
                   "<stateReason><code>Server.SpotInstanceTermination</code>"
                   "<message>Server.SpotInstanceTermination: Spot instance termination"
                   "</message></stateReason>");
  FakeEc2 fake;
  fake.responses = {{200, page}};
  Ec2Provider provider(config(), {}, fake.transport(), fixed_clock());
  auto notices = provider.interruption_notices();
  ASSERT_TRUE(notices.is_ok()) << notices.status().message();
  ASSERT_EQ(notices->size(), 1u);
  EXPECT_EQ((*notices)[0].instance_id, "i-c5cd56af");
  EXPECT_EQ((*notices)[0].reason, "Server.SpotInstanceTermination");
}

TEST(Ec2ProviderTest, OffersAreTheCatalogsAwsOffersInTheRegion) {
  Offer other_cloud = offer("a3-highgpu-8g", "us-east-1", std::nullopt);
  other_cloud.cloud = "gcp";
  Ec2Provider provider(config(),
                       {offer("p5.48xlarge", "us-east-1", std::nullopt),
                        offer("p5.48xlarge", "us-west-2", std::nullopt), other_cloud},
                       FakeEc2().transport(), fixed_clock());
  auto offers = provider.offers({});
  ASSERT_TRUE(offers.is_ok());
  ASSERT_EQ(offers->size(), 1u);
  EXPECT_EQ((*offers)[0].region, "us-east-1");
  EXPECT_EQ((*offers)[0].cloud, "aws");
  // Another region is not this provider's to launch in, even when asked for.
  OfferQuery west;
  west.regions = {"us-west-2"};
  auto none = provider.offers(west);
  ASSERT_TRUE(none.is_ok());
  EXPECT_TRUE(none->empty());
  west.regions = {"us-west-2", "us-east-1"};
  auto both = provider.offers(west);
  ASSERT_TRUE(both.is_ok());
  ASSERT_EQ(both->size(), 1u);
  EXPECT_EQ((*both)[0].region, "us-east-1");
}

TEST(Ec2ProviderTest, OffersHaveNoZoneSinceTheSubnetDecidesIt) {
  // The catalog prices a type per zone; the instance goes where the configured subnet is.
  Offer az1 = offer("p5.48xlarge", "us-east-1", 40.0);
  az1.zone = "use1-az1";
  Offer az2 = offer("p5.48xlarge", "us-east-1", 44.5);
  az2.zone = "use1-az2";
  Offer az4 = offer("p5.48xlarge", "us-east-1", std::nullopt);
  az4.zone = "use1-az4";
  Ec2Provider provider(config(), {az1, az2, az4}, FakeEc2().transport(), fixed_clock());
  auto offers = provider.offers({});
  ASSERT_TRUE(offers.is_ok());
  ASSERT_EQ(offers->size(), 1u);
  EXPECT_EQ((*offers)[0].zone, "");
  EXPECT_EQ((*offers)[0].spot_price_per_hour, 44.5);  // the dearest zone's
  OfferQuery spot;
  spot.spot = true;
  auto spot_offers = provider.offers(spot);
  ASSERT_TRUE(spot_offers.is_ok());
  EXPECT_EQ(spot_offers->size(), 1u);
}

TEST(Ec2ProviderConfigTest, ReadsJsonAndNamesBadFields) {
  auto c = Ec2ProviderConfig::from_json(
      R"({"region":"us-west-2","image_id":"ami-1","subnet_id":"subnet-2",)"
      R"("security_group_ids":["sg-1","sg-2"],"key_name":"k","pool_tag":"team-a",)"
      R"("endpoint":"127.0.0.1:8443","ca_file":"/tmp/ca.pem"})");
  ASSERT_TRUE(c.is_ok()) << c.status().message();
  EXPECT_EQ(c->region, "us-west-2");
  EXPECT_EQ(c->image_id, "ami-1");
  EXPECT_EQ(c->subnet_id, "subnet-2");
  EXPECT_EQ(c->security_group_ids, (std::vector<std::string>{"sg-1", "sg-2"}));
  EXPECT_EQ(c->key_name, "k");
  EXPECT_EQ(c->pool_tag_value, "team-a");
  EXPECT_EQ(c->endpoint, "127.0.0.1:8443");
  EXPECT_EQ(c->ca_file, "/tmp/ca.pem");
  const std::pair<const char*, const char*> bad[] = {
      {"[]", "aws config: expected a JSON object"},
      {"{", "aws config: expected a JSON object"},
      {R"({"image_id":"ami-1"})", "aws config: region: required"},
      {R"({"region":"us-east-1"})", "aws config: image_id: required"},
      {R"({"region":3,"image_id":"a"})", "aws config: region: expected a non-empty string"},
      {R"({"region":"r","image_id":"a","security_group_ids":"sg-1"})",
       "aws config: security_group_ids: expected an array of strings"},
      {R"({"region":"r","image_id":"a","secret":"x"})", "aws config: secret: unknown field"},
  };
  for (const auto& [text, message] : bad) {
    auto r = Ec2ProviderConfig::from_json(text);
    ASSERT_FALSE(r.is_ok()) << text;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(r.status().message().find(message), std::string::npos)
        << text << ": " << r.status().message();
  }
}

TEST(Ec2ProviderTest, StateCodesIgnoreTheHighByte) {
  EXPECT_EQ(ec2_instance_state(16), cloud::InstanceState::kRunning);
  EXPECT_EQ(ec2_instance_state(256 + 16), cloud::InstanceState::kRunning);
  EXPECT_EQ(ec2_instance_state(48), cloud::InstanceState::kTerminated);
  EXPECT_EQ(ec2_instance_state(80), cloud::InstanceState::kStopped);
}

}  // namespace
}  // namespace lepton::cloud::aws
