// lepton-test-upstream: an OpenAI-compatible test server with no model behind it.
//
// POST /v1/chat/completions and /v1/completions answer with "tok0 tok1 ..." after a configurable
// time to first token and delay per token; with "stream": true as server-sent events (one chunk
// per token, then `data: [DONE]`), and a final usage-only chunk only when the request says
// "stream_options": {"include_usage": true}, as OpenAI does. Non-streamed answers carry `usage`.
// GET /healthz and GET /hello (a fixed tiny answer, for load tests) too. Every response carries
// `x-upstream-id: ID`; a stream the client abandons is logged as "cancelled after N tokens".
#include <CLI/CLI.hpp>
#include <atomic>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;
using nlohmann::json;

struct Config {
  uint16_t port = 0;
  int threads = 1;
  int ttft_ms = 0;
  int token_ms = 0;
  int tokens = 16;
  std::string id = "upstream";
};

std::atomic<uint64_t> next_id{1};

std::string response(int status, std::string_view reason, std::string_view content_type,
                     std::string_view body, const Config& config, bool keep_alive) {
  std::string out = "HTTP/1.1 " + std::to_string(status) + " " + std::string(reason) +
                    "\r\nContent-Type: " + std::string(content_type) +
                    "\r\nContent-Length: " + std::to_string(body.size()) +
                    "\r\nx-upstream-id: " + config.id + "\r\n";
  if (!keep_alive) out += "Connection: close\r\n";
  out += "\r\n";
  out.append(body);
  return out;
}

std::string chunk(std::string_view data) {
  char size[20];
  int n = std::snprintf(size, sizeof size, "%zx\r\n", data.size());
  return std::string(size, n) + std::string(data) + "\r\n";
}

uint64_t count_words(const json& v) {
  uint64_t n = 0;
  auto words = [&](const std::string& s) {
    bool in_word = false;
    for (char c : s) {
      bool space = c == ' ' || c == '\n' || c == '\t';
      if (!space && !in_word) ++n;
      in_word = !space;
    }
  };
  if (v.is_string()) words(v.get<std::string>());
  if (v.is_array()) {
    for (const json& item : v) {
      if (item.is_string()) words(item.get<std::string>());
      if (item.is_object() && item.contains("content") && item["content"].is_string()) {
        words(item["content"].get<std::string>());
      }
    }
  }
  return n;
}

// One completion request being answered.
struct Completion {
  bool chat = true;
  bool stream = false;
  bool include_usage = false;
  int tokens = 16;
  uint64_t prompt_tokens = 0;
  std::string model = "test-model";
  std::string id;
  long created = 0;

  json usage() const {
    return {{"prompt_tokens", prompt_tokens},
            {"completion_tokens", tokens},
            {"total_tokens", prompt_tokens + tokens}};
  }
  std::string text(int from, int to) const {
    std::string t;
    for (int i = from; i < to; ++i) t += "tok" + std::to_string(i) + (i + 1 < tokens ? " " : "");
    return t;
  }
  std::string whole() const {
    json choice = {{"index", 0}, {"finish_reason", "length"}};
    if (chat) {
      choice["message"] = {{"role", "assistant"}, {"content", text(0, tokens)}};
    } else {
      choice["text"] = text(0, tokens);
    }
    return json{{"id", id},
                {"object", chat ? "chat.completion" : "text_completion"},
                {"created", created},
                {"model", model},
                {"choices", json::array({choice})},
                {"usage", usage()}}
        .dump();
  }
  std::string event(int i) const {
    json choice = {{"index", 0}, {"finish_reason", i + 1 == tokens ? json("length") : json()}};
    if (chat) {
      choice["delta"] = {{"content", text(i, i + 1)}};
    } else {
      choice["text"] = text(i, i + 1);
    }
    json j = {{"id", id},
              {"object", chat ? "chat.completion.chunk" : "text_completion"},
              {"created", created},
              {"model", model},
              {"choices", json::array({choice})}};
    if (include_usage) j["usage"] = nullptr;
    return "data: " + j.dump() + "\n\n";
  }
  std::string usage_event() const {
    json j = {{"id", id},
              {"object", chat ? "chat.completion.chunk" : "text_completion"},
              {"created", created},
              {"model", model},
              {"choices", json::array()},
              {"usage", usage()}};
    return "data: " + j.dump() + "\n\n";
  }
};

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, const Config& config)
      : socket_(std::move(socket)), timer_(socket_.get_executor()), config_(config) {}

  void read() {
    parser_.emplace();
    parser_->body_limit(4 << 20);
    http::async_read(socket_, buffer_, *parser_,
                     [self = shared_from_this()](error_code ec, size_t) {
                       if (ec) return self->close();
                       self->handle(self->parser_->release());
                     });
  }

 private:
  void handle(const http::request<http::string_body>& req) {
    keep_alive_ = req.keep_alive();
    std::string_view target(req.target().data(), req.target().size());
    std::string_view path = target.substr(0, target.find('?'));
    if (path == "/hello")
      return send(response(200, "OK", "text/plain", "hello\n", config_, keep_alive_));
    if (path == "/healthz")
      return send(response(200, "OK", "text/plain", "ok\n", config_, keep_alive_));
    bool chat = path == "/v1/chat/completions";
    if (!chat && path != "/v1/completions") {
      return send(response(404, "Not Found", "application/json",
                           R"({"error":{"message":"no such path","type":"invalid_request_error"}})",
                           config_, keep_alive_));
    }
    if (req.method() != http::verb::post) {
      return send(response(405, "Method Not Allowed", "application/json",
                           R"({"error":{"message":"use POST","type":"invalid_request_error"}})",
                           config_, keep_alive_));
    }
    json body = json::parse(req.body(), nullptr, false);
    if (body.is_discarded() || !body.is_object()) {
      return send(response(
          400, "Bad Request", "application/json",
          R"({"error":{"message":"body is not a JSON object","type":"invalid_request_error"}})",
          config_, keep_alive_));
    }
    Completion c;
    c.chat = chat;
    c.stream = body.value("stream", false);
    if (body.contains("stream_options") && body["stream_options"].is_object()) {
      c.include_usage = body["stream_options"].value("include_usage", false);
    }
    c.tokens = config_.tokens;
    if (body.contains("max_tokens") && body["max_tokens"].is_number_integer()) {
      c.tokens = std::max(1, std::min(100000, body["max_tokens"].get<int>()));
    }
    c.prompt_tokens =
        count_words(chat ? body.value("messages", json()) : body.value("prompt", json()));
    if (body.contains("model") && body["model"].is_string())
      c.model = body["model"].get<std::string>();
    c.id = (chat ? "chatcmpl-" : "cmpl-") + std::to_string(next_id++);
    c.created = static_cast<long>(std::time(nullptr));
    completion_ = c;
    if (!c.stream) {
      auto delay = std::chrono::milliseconds(config_.ttft_ms + (c.tokens - 1) * config_.token_ms);
      timer_.expires_after(delay);
      timer_.async_wait([self = shared_from_this()](error_code) {
        self->send(response(200, "OK", "application/json", self->completion_.whole(), self->config_,
                            self->keep_alive_));
      });
      return;
    }
    std::string head =
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
        "Transfer-Encoding: chunked\r\nx-upstream-id: " +
        config_.id + "\r\n";
    if (!keep_alive_) head += "Connection: close\r\n";
    write(head + "\r\n", [self = shared_from_this()] { self->next_token(0); });
  }

  void next_token(int i) {
    timer_.expires_after(std::chrono::milliseconds(i == 0 ? config_.ttft_ms : config_.token_ms));
    timer_.async_wait([self = shared_from_this(), i](error_code) {
      const Completion& c = self->completion_;
      std::string out = chunk(c.event(i));
      if (i + 1 < c.tokens) {
        return self->write(
            out, [self, i] { self->next_token(i + 1); }, i + 1);
      }
      if (c.include_usage) out += chunk(c.usage_event());
      out += chunk("data: [DONE]\n\n") + "0\r\n\r\n";
      self->write(
          out, [self] { self->done(); }, i + 1);
    });
  }

  template <typename Next>
  void write(std::string data, Next next, int tokens_sent = -1) {
    out_ = std::move(data);
    asio::async_write(socket_, asio::buffer(out_),
                      [self = shared_from_this(), next, tokens_sent](error_code ec, size_t) {
                        if (ec) {
                          if (tokens_sent >= 0) {
                            std::cout << "cancelled after " << tokens_sent << " tokens"
                                      << std::endl;
                          }
                          return self->close();
                        }
                        next();
                      });
  }

  void send(std::string data) {
    write(std::move(data), [self = shared_from_this()] { self->done(); });
  }

  void done() {
    if (keep_alive_) return read();
    close();
  }

  void close() {
    error_code ec;
    socket_.shutdown(tcp::socket::shutdown_both, ec);
    socket_.close(ec);
  }

  tcp::socket socket_;
  asio::steady_timer timer_;
  const Config& config_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  bool keep_alive_ = true;
  Completion completion_;
  std::string out_;
};

void accept(tcp::acceptor& acceptor, const Config& config) {
  acceptor.async_accept([&acceptor, &config](error_code ec, tcp::socket socket) {
    if (!ec) {
      error_code ignored;
      socket.set_option(tcp::no_delay(true), ignored);
      std::make_shared<Session>(std::move(socket), config)->read();
    }
    if (acceptor.is_open()) accept(acceptor, config);
  });
}

}  // namespace

int main(int argc, char** argv) {
  Config config;
  CLI::App app{"lepton-test-upstream: an OpenAI-compatible test server with no model"};
  app.add_option("--port", config.port, "Port on 127.0.0.1 (0: any free port, printed)");
  app.add_option("--threads", config.threads, "I/O threads")->check(CLI::Range(1, 256));
  app.add_option("--ttft-ms", config.ttft_ms, "Time to the first token, ms")
      ->check(CLI::Range(0, 600000));
  app.add_option("--token-ms", config.token_ms, "Delay between tokens, ms")
      ->check(CLI::Range(0, 600000));
  app.add_option("--tokens", config.tokens, "Tokens per answer when the request sets no max_tokens")
      ->check(CLI::Range(1, 100000));
  app.add_option("--id", config.id, "Sent back as x-upstream-id on every response");
  CLI11_PARSE(app, argc, argv);

  asio::io_context ioc(config.threads);
  tcp::acceptor acceptor(ioc);
  error_code ec;
  tcp::endpoint endpoint(asio::ip::make_address("127.0.0.1"), config.port);
  acceptor.open(endpoint.protocol(), ec);
  if (!ec) acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) acceptor.bind(endpoint, ec);
  if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    std::cerr << "lepton-test-upstream: cannot listen on 127.0.0.1:" << config.port << ": "
              << ec.message() << "\n";
    return 1;
  }
  std::cout << "listening on 127.0.0.1:" << acceptor.local_endpoint().port() << std::endl;
  asio::signal_set signals(ioc, SIGINT, SIGTERM);
  signals.async_wait([&](error_code, int) { ioc.stop(); });
  accept(acceptor, config);
  std::vector<std::thread> threads;
  for (int i = 1; i < config.threads; ++i) threads.emplace_back([&] { ioc.run(); });
  ioc.run();
  for (auto& t : threads) t.join();
  return 0;
}
