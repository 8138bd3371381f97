#include "tests/process.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdio>
#include <fstream>
#include <sstream>

namespace lepton::e2e {

int free_port() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  int port = ntohs(addr.sin_port);
  close(fd);
  return port;
}

std::string read_text(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::vector<std::string> read_lines(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::vector<std::string> out;
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

CommandResult run_command(const std::string& command, Stderr where) {
  CommandResult r;
  std::filesystem::path err_file;
  std::string redirect = " 2>&1";
  if (where == Stderr::kApart) {
    char name[] = "/tmp/lepton-e2e-stderr-XXXXXX";
    const int fd = mkstemp(name);
    if (fd < 0) return r;
    close(fd);
    err_file = name;
    redirect = " 2>" + err_file.string();
  }
  FILE* p = popen((command + redirect).c_str(), "r");
  if (p) {
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
    const int status = pclose(p);
    r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }
  if (!err_file.empty()) {
    r.err = read_text(err_file);
    std::filesystem::remove(err_file);
  }
  return r;
}

namespace {

using Clock = std::chrono::steady_clock;

std::string dechunk(const std::string& raw) {
  std::string out;
  size_t pos = 0;
  while (pos < raw.size()) {
    size_t eol = raw.find("\r\n", pos);
    if (eol == std::string::npos) break;
    size_t size = std::stoul(raw.substr(pos, eol - pos), nullptr, 16);
    if (size == 0) break;
    out += raw.substr(eol + 2, size);
    pos = eol + 2 + size + 2;
  }
  return out;
}

}  // namespace

int connect_to(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  timeval tv{10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

RawResponse send_raw(int port, const std::string& raw) {
  RawResponse r;
  int fd = connect_to(port);
  if (fd < 0) return r;
  auto start = Clock::now();
  (void)!send(fd, raw.data(), raw.size(), MSG_NOSIGNAL);
  std::string data;
  char buf[8192];
  size_t head_end = std::string::npos;
  while (true) {
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    data.append(buf, n);
    if (head_end == std::string::npos) head_end = data.find("\r\n\r\n");
    if (head_end != std::string::npos && r.first_body_ms < 0 && data.size() > head_end + 4) {
      r.first_body_ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
    }
  }
  r.total_ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
  close(fd);
  if (head_end == std::string::npos) return r;
  r.head = data.substr(0, head_end + 2);
  r.status = std::stoi(data.substr(9, 3));
  std::string body = data.substr(head_end + 4);
  r.body = r.has_header("Transfer-Encoding: chunked") ? dechunk(body) : body;
  return r;
}

RawResponse request(int port, const std::string& method, const std::string& target,
                    const std::string& body, const std::string& host, const std::string& headers) {
  std::string raw =
      method + " " + target + " HTTP/1.1\r\nHost: " + host + "\r\nConnection: close\r\n" + headers;
  if (!body.empty()) {
    raw +=
        "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
  }
  return send_raw(port, raw + "\r\n" + body);
}

}  // namespace lepton::e2e
