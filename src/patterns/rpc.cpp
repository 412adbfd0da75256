#include "shmbus/patterns/rpc.hpp"
#include "shmbus/core/internals.hpp"

#include <unistd.h>

#include <algorithm>
#include <random>

#include "detail/internal.hpp"

namespace shmbus {

std::string_view to_string(RpcStatus s) noexcept {
  switch (s) {
    case RpcStatus::Ok:
      return "ok";
    case RpcStatus::Timeout:
      return "timeout";
    case RpcStatus::SendFailed:
      return "send_failed";
    case RpcStatus::NoResponder:
      return "no_responder";
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
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '_' || c == '-';
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
  Bus bus;
  std::string service;
  std::string client;
  Publisher pub;
  Subscriber sub;
  std::uint64_t next_correlation;
  std::uint64_t late = 0;

  ~Impl() {
    // Give the roles back, then remove the pair: a Responder that maps them
    // sees them gone from the directory and drops this client. A forked
    // child shares no role and removes nothing.
    if (owner_pid != ::getpid()) return;
    const std::string req = pub.topic().name();
    const std::string rep = sub.topic().name();
    { Publisher gone = std::move(pub); }
    { Subscriber gone = std::move(sub); }
    (void)bus.remove_topic(req);
    (void)bus.remove_topic(rep);
  }
  pid_t owner_pid = ::getpid();
};

Requester::Requester(Bus bus, std::string_view service, const RpcConfig& config,
                     std::string client) {
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
  impl_ = std::unique_ptr<Impl>(new Impl{std::move(bus), std::string(service), std::move(client),
                                         std::move(pub), std::move(sub), start});
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
      reply.status = impl_->pub.topic().live_consumers_hint() == 0 ? RpcStatus::NoResponder
                                                                   : RpcStatus::Timeout;
      return reply;
    }
    (void)impl_->sub.wait(remaining);
  }
}

Reply Requester::call(const flatbuffers::FlatBufferBuilder& request,
                      std::chrono::nanoseconds timeout) {
  return call(bytes_of(request), timeout);
}

std::uint64_t Requester::late_replies() const noexcept {
  return impl_->late;
}
const std::string& Requester::client() const noexcept {
  return impl_->client;
}

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

PublishResult ReplyWriter::reply(const flatbuffers::FlatBufferBuilder& fbb) {
  return reply(bytes_of(fbb));
}

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
  std::uint32_t polls = 0;
  std::uint64_t failed = 0;
  std::uint64_t expired = 0;

  // A raw config serves typed and raw clients alike (it handles bytes); a
  // typed one serves only clients of its types.
  [[nodiscard]] static bool accepts(const TopicConfig& c, const Topic& t) {
    return c.type.is_raw() || (t.type_name() == c.type.name && t.schema_hash() == c.type.hash);
  }

  [[nodiscard]] bool serves(const std::string& client) const {
    return std::any_of(clients.begin(), clients.end(),
                       [&](const auto& c) { return c->name == client; });
  }

  // The first request of `req` that no reply on `rep` answers: the one after
  // the request whose correlation the newest reply carries, else the oldest
  // the ring holds. Read through observers: nothing is registered or written.
  static std::uint64_t first_unanswered(const Topic& req, const Topic& rep) {
    const std::uint64_t rep_head = rep.head_hint();
    std::uint64_t answered = 0;
    if (rep_head != 0) {
      SubscriberOptions o;
      o.register_consumer = false;
      o.start = Start::Sequence;
      o.sequence = rep_head;
      Subscriber newest(rep, o);
      (void)newest.poll([&](const Message& m) { answered = m.meta.correlation; });
    }
    SubscriberOptions o;
    o.register_consumer = false;
    o.start = Start::Oldest;
    Subscriber backlog(req, o);
    std::uint64_t first = 0;
    std::uint64_t after_answered = 0;
    const std::uint64_t head = req.head_hint();
    while (backlog.next_sequence() <= head && backlog.poll(
                                                  [&](const Message& m) {
                                                    if (first == 0) first = m.meta.seq;
                                                    if (answered != 0 &&
                                                        m.meta.correlation == answered)
                                                      after_answered = m.meta.seq + 1;
                                                  },
                                                  256) != 0) {
    }
    if (after_answered != 0) return after_answered;
    return first != 0 ? first : head + 1;
  }

  // Drops clients whose topics are gone or whose process died (removing a
  // dead client's topics: nobody else will), then takes on new clients.
  void scan() {
    const std::vector<std::string> topics = bus.topic_names();
    for (auto it = clients.begin(); it != clients.end();) {
      Client& c = **it;
      const std::string req = request_topic(service, c.name);
      const bool listed = std::find(topics.begin(), topics.end(), req) != topics.end();
      const bool dead = listed && c.sub.topic().producer_gone_hint() && !c.sub.ready();
      if (listed && !dead) {
        ++it;
        continue;
      }
      const std::string rep = reply_topic(service, c.name);
      it = clients.erase(it);
      if (dead) {
        (void)bus.remove_topic(req);
        (void)bus.remove_topic(rep);
      }
    }
    const std::string prefix = service + ".req.";
    for (const std::string& topic : topics) {
      if (topic.rfind(prefix, 0) != 0) continue;
      const std::string client = topic.substr(prefix.size());
      if (client.empty() || serves(client)) continue;
      try {
        // Opened, never created: a client that just left must not be re-created.
        Topic req = bus.open_topic(topic);
        if (req.producer_gone_hint() && req.head_hint() == 0) continue;  // not started, or gone
        Topic rep = bus.open_topic(reply_topic(service, client));
        if (!accepts(config.request, req) || !accepts(config.reply, rep)) continue;
        SubscriberOptions so;
        so.name = name;
        so.start = Start::Sequence;
        so.sequence = first_unanswered(req, rep);
        PublisherOptions po;
        po.name = name;
        Subscriber sub(req, so);
        Publisher pub(rep, po);
        clients.push_back(std::make_unique<Client>(Client{client, std::move(sub), std::move(pub)}));
      } catch (const Error& e) {
        // A client removed between the listing and the open, or one whose
        // reply topic another responder serves: not ours to serve now.
        if (e.code() != Errc::NoSuchTopic && e.code() != Errc::ProducerExists) throw;
      }
    }
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
          if (m.meta.age_ns() > impl_->config.request_ttl.count()) {
            ++impl_->expired;  // its caller gave up long ago: do not act on it
            return;
          }
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
    if (detail::wait_any(subs, detail::Internals::state(impl_->bus)->header->doorbell.futex, slice,
                         nullptr))
      return true;
    if (clock::now() >= deadline) return false;
  }
}

std::size_t Responder::clients() const noexcept {
  return impl_->clients.size();
}
std::uint64_t Responder::failed_replies() const noexcept {
  return impl_->failed;
}
std::uint64_t Responder::expired_requests() const noexcept {
  return impl_->expired;
}

}  // namespace shmbus
