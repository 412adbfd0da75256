#include "bridge.hpp"

#include <fmt/format.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <ctime>

#include <shmbus/error.hpp>

namespace shmbus::bridge {

Component::~Component() = default;

std::int64_t now_ns() noexcept {
  timespec ts{};
  ::clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

Bridge::Bridge(Config config) : config_(std::move(config)) {
  net::ServerOptions o;
  o.address = config_.http_address;
  o.port = config_.http_port;
  // Health checks and scrapes are short; a stuck client must not hold a connection long.
  o.request_timeout = std::chrono::seconds(10);
  o.websocket.coalesce = config_.http_ws_coalesce;
  o.websocket.max_writes_per_s = config_.http_ws_max_writes_per_s;
  http_ = std::make_unique<net::HttpServer>(io_, o);
}

Bridge::~Bridge() {
  shutdown();
}

void Bridge::add_component(std::unique_ptr<Component> component) {
  for (const auto& c : components_) {
    if (c->name() == component->name()) {
      throw ConfigError("two components are named '" + component->name() + "'");
    }
  }
  components_.push_back(std::move(component));
}

void Bridge::block_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

void Bridge::start() {
  try {
    bus_.emplace(Bus::open_or_create(config_.bus));
    {
      TopicConfig dl;
      dl.policy = Policy::Lossy;  // a dead-letter reader must never hold the bridge up
      dl.slot_size = config_.dead_letter.slot_size;
      dl.slot_count = config_.dead_letter.slot_count;
      dl.type = type_of<sys::DeadLetter>();
      Topic t = bus_->topic(config_.dead_letter.topic, dl, Match::TypeOnly);
      PublisherOptions po;
      po.name = "bus-bridge:" + config_.name;
      dl_publisher_.emplace(std::move(t), po);
      dl_max_payload_ = static_cast<std::uint32_t>(dl_publisher_->max_payload());
    }
    for (auto& c : components_) {
      c->start(*this);
      ++started_;
    }
    if (config_.http_enabled) start_http();
  } catch (...) {
    shutdown();
    throw;
  }
}

void Bridge::start_http() {
  http_->route(net::http::verb::get, "/health", [this](const net::Request& req) {
    bool ok = true;
    const nlohmann::json j = health_json(ok);
    return net::make_response(req,
                              ok ? net::http::status::ok : net::http::status::service_unavailable,
                              scrub(j.dump()) + "\n", "application/json");
  });
  http_->route(net::http::verb::get, "/metrics", [this](const net::Request& req) {
    return net::make_response(req, net::http::status::ok, scrub(metrics_text()),
                              transport::MetricsRegistry::content_type);
  });
  http_port_ = http_->start();
  work_.emplace(boost::asio::make_work_guard(io_));
  io_thread_ = std::thread([this] { io_.run(); });
  // Tests and scripts read the port from this line (port 0 lets the OS choose).
  std::printf("bus-bridge: http listening on %s:%u\n", config_.http_address.c_str(),
              static_cast<unsigned>(http_port_));
  std::fflush(stdout);
}

void Bridge::stop_http() {
  if (!io_thread_.joinable()) return;
  http_->stop();
  work_.reset();
  io_.stop();
  io_thread_.join();
}

void Bridge::shutdown() {
  std::call_once(shutdown_once_, [this] {
    const auto deadline = std::chrono::steady_clock::now() + config_.shutdown_timeout;
    stop_deadline_ns_.store(deadline.time_since_epoch().count(), std::memory_order_relaxed);
    stopping_.store(true, std::memory_order_release);
    for (std::size_t i = 0; i < started_; ++i) components_[i]->request_stop();
    for (std::size_t i = started_; i-- > 0;) components_[i]->stop();
    stop_http();
    {
      std::lock_guard lock(publishers_mutex_);
      publishers_.clear();
    }
    std::lock_guard lock(dl_mutex_);
    dl_publisher_.reset();
  });
}

std::chrono::steady_clock::time_point Bridge::stop_deadline() const noexcept {
  return std::chrono::steady_clock::time_point(
      std::chrono::steady_clock::duration(stop_deadline_ns_.load(std::memory_order_relaxed)));
}

int Bridge::run() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  int sig = 0;
  while (sigwait(&set, &sig) != 0) {
  }
  log(fmt::format("{} received: stopping (flushing, waiting up to {} ms for confirms)",
                  sig == SIGTERM ? "SIGTERM" : "SIGINT", config_.shutdown_timeout.count()));
  // The shutdown runs on its own thread so that this one can still hear a second signal.
  std::atomic<bool> done{false};
  std::thread stopper([this, &done] {
    shutdown();
    done.store(true, std::memory_order_release);
  });
  const timespec poll{0, 50'000'000};
  while (!done.load(std::memory_order_acquire)) {
    siginfo_t info;
    if (sigtimedwait(&set, &info, &poll) > 0) {
      log("second signal: exiting at once");
      std::fflush(nullptr);
      ::_exit(130);
    }
  }
  stopper.join();
  log("stopped");
  return 0;
}

void Bridge::log(std::string_view line) const {
  const std::string text = scrub(line);
  std::lock_guard lock(log_mutex_);
  std::fprintf(stderr, "bus-bridge[%s]: %s\n", config_.name.c_str(), text.c_str());
  std::fflush(stderr);
}

std::string Bridge::scrub(std::string_view text) const {
  std::string s = transport::scrub(text, config_.redis.password);
  return transport::scrub(s, config_.amqp.password);
}

void Bridge::dead_letter(const DeadLetterInfo& info) {
  metrics_
      .counter("shmbus_bridge_dead_lettered_total",
               "Messages put on the dead-letter topic, by route", {{"route", info.route}})
      .inc();
  std::lock_guard lock(dl_mutex_);
  if (!dl_publisher_) return;
  std::span<const std::byte> payload = info.payload;
  std::string reason = info.reason;
  // Room for the table's other fields: strings plus ~128 bytes of vtable and scalars.
  const std::size_t overhead = 256 + info.route.size() + info.original_topic.size() +
                               reason.size() + info.original_type.size() + config_.name.size();
  if (payload.size() + overhead > dl_max_payload_) {
    const std::size_t keep = dl_max_payload_ > overhead + 64 ? dl_max_payload_ - overhead - 64 : 0;
    reason += fmt::format(" (payload cut from {} to {} bytes to fit the dead-letter slot)",
                          payload.size(), keep);
    payload = payload.first(keep);
  }
  flatbuffers::FlatBufferBuilder fbb(payload.size() + overhead + 64);
  const std::int64_t now = now_ns();
  const auto topic_s = fbb.CreateString(info.original_topic);
  const auto reason_s = fbb.CreateString(reason);
  const auto type_s = info.original_type.empty() ? 0 : fbb.CreateString(info.original_type);
  const auto payload_v =
      fbb.CreateVector(reinterpret_cast<const std::uint8_t*>(payload.data()), payload.size());
  const auto source_s = fbb.CreateString(config_.name + "/" + info.route);
  sys::DeadLetterBuilder b(fbb);
  b.add_original_topic(topic_s);
  b.add_reason(reason_s);
  b.add_reason_code(info.code);
  if (!info.original_type.empty()) b.add_original_type(type_s);
  b.add_payload(payload_v);
  b.add_original_seq(info.original_seq);
  b.add_received_ts(static_cast<std::uint64_t>(info.received_ns != 0 ? info.received_ns : now));
  b.add_source(source_s);
  b.add_attempts(info.attempts);
  b.add_ts(static_cast<std::uint64_t>(now));
  fbb.Finish(b.Finish(), sys::DeadLetterIdentifier());
  const PublishResult r = dl_publisher_->try_publish(fbb);
  if (r != PublishResult::Ok) {
    log(fmt::format("route {}: dead letter for '{}' could not be published ({}); reason was: {}",
                    info.route, info.original_topic, to_string(r), reason));
  }
}

std::shared_ptr<SharedPublisher> Bridge::bus_publisher(const std::string& topic,
                                                       const TopicConfig& config) {
  std::lock_guard lock(publishers_mutex_);
  auto it = publishers_.find(topic);
  if (it != publishers_.end()) return it->second;
  Topic t = bus_->topic(topic, config, Match::TypeOnly);
  auto shared = std::make_shared<SharedPublisher>(t);
  PublisherOptions po;
  po.name = "bus-bridge:" + config_.name;
  shared->publisher.emplace(t, po);
  publishers_.emplace(topic, shared);
  return shared;
}

nlohmann::json Bridge::health_json(bool& ok) const {
  nlohmann::json j;
  j["bridge"] = config_.name;
  j["bus"] = config_.bus;
  j["dead_letter_topic"] = config_.dead_letter.topic;
  j["stopping"] = stopping();
  nlohmann::json routes = nlohmann::json::array();
  ok = !stopping();
  for (std::size_t i = 0; i < started_; ++i) {
    nlohmann::json r = nlohmann::json::object();
    r["name"] = components_[i]->name();
    components_[i]->health(r);
    const bool healthy = components_[i]->healthy();
    r["healthy"] = healthy;
    ok = ok && healthy;
    routes.push_back(std::move(r));
  }
  j["routes"] = std::move(routes);
  j["status"] = ok ? "ok" : "unavailable";
  return j;
}

std::string Bridge::metrics_text() {
  for (std::size_t i = 0; i < started_; ++i) components_[i]->collect(metrics_);
  return metrics_.render();
}

}  // namespace shmbus::bridge
