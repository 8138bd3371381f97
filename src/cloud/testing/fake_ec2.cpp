#include "cloud/testing/fake_ec2.h"

#include <cstdio>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <utility>

namespace lepton::cloud::aws_testing {
namespace {

std::string read_example(const std::string& dir, const std::string& name) {
  std::ifstream in(dir + "/" + name);
  if (!in) throw std::runtime_error("fake ec2: cannot read " + dir + "/" + name);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// Where the text between `<element>` and `</element>` starts and how long it is (the first such
// element at or after `from`).
std::pair<size_t, size_t> inner(const std::string& xml, const std::string& element,
                                size_t from = 0) {
  const std::string open = "<" + element + ">", close = "</" + element + ">";
  const size_t start = xml.find(open, from);
  const size_t end = start == std::string::npos ? start : xml.find(close, start);
  if (end == std::string::npos) throw std::runtime_error("fake ec2: no <" + element + ">");
  return {start + open.size(), end - start - open.size()};
}

// `xml` with the text of its first `<element>` replaced by `text`.
std::string replace_inner(std::string xml, const std::string& element, const std::string& text) {
  const auto [at, size] = inner(xml, element);
  return xml.replace(at, size, text);
}

// The instances of an example response replaced by `items`.
std::string with_instances(std::string example, const std::string& items) {
  return replace_inner(std::move(example), "instancesSet", items);
}

// application/x-www-form-urlencoded, as the Query API's POST body.
std::map<std::string, std::string> parse_form(const std::string& body) {
  auto decode = [](const std::string& s) {
    std::string out;
    for (size_t i = 0; i < s.size(); ++i) {
      if (s[i] == '%' && i + 2 < s.size()) {
        unsigned value = 0;
        std::sscanf(s.substr(i + 1, 2).c_str(), "%2x", &value);
        out += static_cast<char>(value);
        i += 2;
      } else {
        out += s[i] == '+' ? ' ' : s[i];
      }
    }
    return out;
  };
  std::map<std::string, std::string> out;
  std::stringstream in(body);
  std::string pair;
  while (std::getline(in, pair, '&')) {
    const size_t eq = pair.find('=');
    out[decode(pair.substr(0, eq))] = eq == std::string::npos ? "" : decode(pair.substr(eq + 1));
  }
  return out;
}

// The documented error document (errors-overview.html).
aws::Ec2HttpResponse error(int status, const std::string& code, const std::string& message) {
  return {status, "<Response><Errors><Error><Code>" + code + "</Code><Message>" + message +
                      "</Message></Error></Errors><RequestID>ea966190-f9aa-478e-9ede-example"
                      "</RequestID></Response>"};
}

std::string state_inner(int code) {
  const char* name = code == 0    ? "pending"
                     : code == 16 ? "running"
                     : code == 32 ? "shutting-down"
                                  : "terminated";
  return "<code>" + std::to_string(code) + "</code><name>" + name + "</name>";
}

}  // namespace

FakeEc2::FakeEc2(const std::string& examples_dir, std::set<std::string> instance_types)
    : run_example_(read_example(examples_dir, "run_instances.xml")),
      describe_example_(read_example(examples_dir, "describe_instances.xml")),
      terminate_example_(read_example(examples_dir, "terminate_instances.xml")),
      instance_types_(std::move(instance_types)) {
  // The DescribeInstances example holds one instance: its text is each instance's pattern.
  const auto [at, size] = inner(describe_example_, "instancesSet");
  instance_example_ = describe_example_.substr(at, size);
}

aws::Ec2Transport FakeEc2::transport() {
  return [this](const aws::HttpRequest& request) -> Result<aws::Ec2HttpResponse> {
    return handle(request);
  };
}

int FakeEc2::calls(const std::string& action) const {
  std::lock_guard lock(mu_);
  auto it = calls_.find(action);
  return it == calls_.end() ? 0 : it->second;
}

aws::Ec2HttpResponse FakeEc2::handle(const aws::HttpRequest& request) {
  std::lock_guard lock(mu_);
  std::map<std::string, std::string> params = parse_form(request.body);
  const std::string action = params["Action"];
  ++calls_[action];
  if (action == "RunInstances") return run(params);
  if (action == "DescribeInstances") return describe(params);
  if (action == "TerminateInstances") return terminate(params);
  return error(400, "InvalidAction",
               "The action " + action + " is not valid for this web service.");
}

std::string FakeEc2::instance_xml(const Machine& m) const {
  std::string xml = instance_example_;
  xml = replace_inner(std::move(xml), "instanceId", m.id);
  xml = replace_inner(std::move(xml), "instanceState", state_inner(m.state));
  xml = replace_inner(std::move(xml), "instanceType", m.type);
  xml = replace_inner(std::move(xml), "availabilityZone", m.zone);
  std::string tags;
  for (const auto& [key, value] : m.tags) {
    tags += "<item><key>" + key + "</key><value>" + value + "</value></item>";
  }
  xml = replace_inner(std::move(xml), "tagSet", tags);
  if (!m.market.empty()) {
    const std::string after = "</instanceType>";
    xml.insert(xml.find(after) + after.size(),
               "<instanceLifecycle>" + m.market + "</instanceLifecycle>");
  }
  return xml;
}

aws::Ec2HttpResponse FakeEc2::run(std::map<std::string, std::string>& params) {
  const std::string token = params["ClientToken"];
  std::string items;
  if (!token.empty()) {
    if (auto it = by_client_token_.find(token); it != by_client_token_.end()) {
      for (const Machine& m : machines_) {
        for (const std::string& id : it->second) {
          if (m.id == id) items += instance_xml(m);
        }
      }
      return {200, with_instances(run_example_, items)};
    }
  }
  const std::string type = params["InstanceType"];
  if (!instance_types_.count(type)) {
    return error(400, "InvalidParameterValue", "Invalid value '" + type + "' for InstanceType.");
  }
  const int count = std::atoi(params["MaxCount"].c_str());
  if (count < 1) return error(400, "InvalidParameterValue", "Invalid value for MaxCount.");
  for (int i = 0; i < count; ++i) {
    Machine m;
    m.id = "i-0" + std::to_string(1000000000000000 + machines_.size() + 1);
    m.type = type;
    m.market = params["InstanceMarketOptions.MarketType"];
    m.zone = "us-east-1a";
    for (int t = 1; params.count("TagSpecification.1.Tag." + std::to_string(t) + ".Key"); ++t) {
      const std::string prefix = "TagSpecification.1.Tag." + std::to_string(t);
      m.tags.emplace_back(params[prefix + ".Key"], params[prefix + ".Value"]);
    }
    if (!token.empty()) by_client_token_[token].push_back(m.id);
    items += instance_xml(m);
    machines_.push_back(std::move(m));
  }
  return {200, with_instances(run_example_, items)};
}

aws::Ec2HttpResponse FakeEc2::describe(std::map<std::string, std::string>& params) {
  const std::string name = params["Filter.1.Name"], value = params["Filter.1.Value.1"];
  std::string items;
  for (const Machine& m : machines_) {
    bool tagged = name.empty();
    for (const auto& [k, v] : m.tags) tagged = tagged || ("tag:" + k == name && v == value);
    if (tagged) items += instance_xml(m);
  }
  return {200, with_instances(describe_example_, items)};
}

aws::Ec2HttpResponse FakeEc2::terminate(std::map<std::string, std::string>& params) {
  std::vector<Machine*> ending;
  for (int i = 1; params.count("InstanceId." + std::to_string(i)); ++i) {
    const std::string id = params["InstanceId." + std::to_string(i)];
    Machine* found = nullptr;
    for (Machine& m : machines_) found = m.id == id ? &m : found;
    if (!found) {
      return error(400, "InvalidInstanceID.NotFound",
                   "The instance ID '" + id + "' does not exist");
    }
    ending.push_back(found);
  }
  // The example's one item is each instance's pattern.
  const auto [at, size] = inner(terminate_example_, "instancesSet");
  const std::string item = terminate_example_.substr(at, size);
  std::string items;
  for (Machine* m : ending) {
    std::string xml = replace_inner(item, "instanceId", m->id);
    xml = replace_inner(std::move(xml), "currentState", state_inner(32));
    xml = replace_inner(std::move(xml), "previousState", state_inner(m->state));
    items += xml;
    m->state = 32;
  }
  return {200, with_instances(terminate_example_, items)};
}

}  // namespace lepton::cloud::aws_testing
