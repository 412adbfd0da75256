#include "shmbus/core/internals.hpp"
#include "shmbus/patterns/rpc.hpp"

#include <unistd.h>

#include <random>
#include <set>

#include "detail/internal.hpp"

namespace shmbus {

std::string_view to_string(RpcStatus s) noexcept {
  switch (s) {
    case RpcStatus::Ok: return "ok";
    case RpcStatus::Timeout: return "timeout";
    case RpcStatus::SendFailed: return "send_failed";
  }
  return "unknown";
}

namespace {

std::string request_topic(std::string_view service, std::string_view client) {
  return std::string(service) + ".req." + std::string(client);
}
std::string reply_topic(std::string_view service, std::string_view client) {
  return std::string(service) + ".rep." + std::string(client);
}

// A client name that is also valid inside a topic name.
std::string default_client() {
  std::string n = detail::participant_name({});
  for (char& c : n) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
    if (!ok) c = '_';
  }
  return n + "-" + std::to_string(::getpid());
}

std::span<const std::byte> bytes_of(const flatbuffers::FlatBufferBuilder& fbb) {
  return {reinterpret_cast<const std::byte*>(fbb.GetBufferPointer()), fbb.GetSize()};
}

}  // namespace

// ------------------------------------------------------------------ Requester

struct Requester::Impl {
  std::string client;
  Publisher pub;
  Subscriber sub;
  std::uint64_t next_correlation;
  std::uint64_t late = 0;
};

Requester::Requester(Bus bus, std::string_view service, const RpcConfig& config, std::string client) {
  if (client.empty()) client = default_client();
  validate_topic_name(request_topic(service, client));
  PublisherOptions po;
  po.name = client.substr(0, detail::kMaxParticipantName);
  SubscriberOptions so;
  so.name = po.name;
  Publisher pub(bus.topic(request_topic(service, client), config.request), po);
  Subscriber sub(bus.topic(reply_topic(service, client), config.reply), so);
  // A random start, so a restarted client with the same name never mistakes
  // a reply meant for its previous incarnation for one of its own.
  std::random_device rd;
  const std::uint64_t start = (std::uint64_t{rd()} << 32 | rd()) | 1u;
  impl_ = std::make_unique<Impl>(Impl{std::move(client), std::move(pub), std::move(sub), start});
}

Requester::~Requester() = default;
Requester::Requester(Requester&&) noexcept = default;
Requester& Requester::operator=(Requester&&) noexcept = default;

Reply Requester::call(std::span<const std::byte> request, std::chrono::nanoseconds timeout) {
  using clock = std::chrono::steady_clock;
  const auto deadline = clock::now() + timeout;
  Reply reply;
  std::uint64_t corr = impl_->next_correlation++;
  if (corr == 0) corr = impl_->next_correlation++;
  reply.correlation = corr;
  reply.send_result = impl_->pub.publish(request, timeout, corr);
  if (reply.send_result != PublishResult::Ok) {
    reply.status = RpcStatus::SendFailed;
    return reply;
  }
  bool found = false;
  for (;;) {
    impl_->sub.poll(
        [&](const Message& m) {
          if (found || m.meta.correlation != corr) {
            ++impl_->late;  // a reply to a call that already timed out
            return;
          }
          found = true;
          reply.status = RpcStatus::Ok;
          reply.seq = m.meta.seq;
          reply.ts_ns = m.meta.ts_ns();
          reply.payload.assign(m.data.begin(), m.data.end());
        },
        64);
    if (found) return reply;
    const auto remaining = deadline - clock::now();
    if (remaining <= clock::duration::zero()) {
      reply.status = RpcStatus::Timeout;
      return reply;
    }
    (void)impl_->sub.wait(remaining);
  }
}

Reply Requester::call(const flatbuffers::FlatBufferBuilder& request, std::chrono::nanoseconds timeout) {
  return call(bytes_of(request), timeout);
}

std::uint64_t Requester::late_replies() const noexcept { return impl_->late; }
const std::string& Requester::client() const noexcept { return impl_->client; }

// ------------------------------------------------------------------ ReplyWriter

PublishResult ReplyWriter::reply(std::span<const std::byte> payload) {
  const PublishResult r = pub_.publish(payload, timeout_, correlation_);
  if (r == PublishResult::Ok) {
    replied_ = true;
  } else {
    ++failed_;
  }
  return r;
}

PublishResult ReplyWriter::reply(const flatbuffers::FlatBufferBuilder& fbb) { return reply(bytes_of(fbb)); }

// ------------------------------------------------------------------ Responder

struct Responder::Impl {
  explicit Impl(Bus b) : bus(std::move(b)) {}
  struct Client {
    std::string name;
    Subscriber sub;
    Publisher pub;
  };
  Bus bus;
  std::string service;
  std::string name;
  RpcConfig config;
  std::vector<std::unique_ptr<Client>> clients;
  std::set<std::string> known;
  std::uint32_t polls = 0;
  std::uint64_t failed = 0;
  bool scanned_once = false;

  // Finds request topics of clients we do not serve yet. Clients present at
  // start-up are served from their next request on (their backlog was, or
  // will be, answered by whoever served them before); clients that appear
  // later are served from their first request.
  void scan() {
    const std::string prefix = service + ".req.";
    for (const std::string& topic : bus.topic_names()) {
      if (topic.rfind(prefix, 0) != 0) continue;
      const std::string client = topic.substr(prefix.size());
      if (client.empty() || known.count(client) != 0) continue;
      SubscriberOptions so;
      so.name = name;
      so.start = scanned_once ? Start::Oldest : Start::Live;
      PublisherOptions po;
      po.name = name;
      Subscriber sub(bus.topic(topic, config.request), so);
      Publisher pub(bus.topic(reply_topic(service, client), config.reply), po);
      clients.push_back(std::make_unique<Client>(Client{client, std::move(sub), std::move(pub)}));
      known.insert(client);
    }
    scanned_once = true;
  }
};

Responder::Responder(Bus bus, std::string_view service, const RpcConfig& config, std::string name) {
  validate_topic_name(std::string(service) + ".req.x");
  impl_ = std::make_unique<Impl>(std::move(bus));
  impl_->service = std::string(service);
  impl_->name = detail::participant_name(name);
  impl_->config = config;
  impl_->scan();
}

Responder::~Responder() = default;
Responder::Responder(Responder&&) noexcept = default;
Responder& Responder::operator=(Responder&&) noexcept = default;

std::size_t Responder::poll_impl(const std::function<void(const Message&, ReplyWriter&)>& handler,
                                 std::size_t max) {
  if ((impl_->polls++ & 1023u) == 0) impl_->scan();
  std::size_t n = 0;
  for (auto& c : impl_->clients) {
    if (n >= max) break;
    n += c->sub.poll(
        [&](const Message& m) {
          ReplyWriter w(c->pub, m.meta.correlation, impl_->config.reply_timeout, impl_->failed);
          handler(m, w);
        },
        max - n);
  }
  return n;
}

bool Responder::wait(std::chrono::nanoseconds timeout) {
  using clock = std::chrono::steady_clock;
  const auto deadline = clock::now() + timeout;
  for (;;) {
    impl_->scan();
    std::vector<Subscriber*> subs;
    for (auto& c : impl_->clients) subs.push_back(&c->sub);
    // Sleep in slices so new clients are found while we wait.
    const auto remaining = deadline - clock::now();
    const auto slice = std::min<std::chrono::nanoseconds>(remaining, std::chrono::milliseconds(20));
    if (detail::wait_any(subs, detail::Internals::state(impl_->bus)->header->doorbell.futex, slice, nullptr)) return true;
    if (clock::now() >= deadline) return false;
  }
}

std::size_t Responder::clients() const noexcept { return impl_->clients.size(); }
std::uint64_t Responder::failed_replies() const noexcept { return impl_->failed; }

}  // namespace shmbus
