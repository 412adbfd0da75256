#include "transport/redis_subscriber.hpp"

#include <stdexcept>
#include <string_view>

namespace shmbus::bridge::transport {
namespace {

std::string_view str(const redisReply* r) {
  if (r == nullptr || (r->type != REDIS_REPLY_STRING && r->type != REDIS_REPLY_STATUS)) return {};
  return {r->str, r->len};
}

void append_list(redisContext* c, const char* verb, const std::vector<std::string>& items) {
  std::vector<const char*> argv{verb};
  std::vector<std::size_t> lens{std::string_view(verb).size()};
  for (const auto& s : items) {
    argv.push_back(s.data());
    lens.push_back(s.size());
  }
  redisAppendCommandArgv(c, static_cast<int>(argv.size()), argv.data(), lens.data());
}

}  // namespace

RedisSubscriber::RedisSubscriber(RedisSubscriberOptions options, Backoff::Random random)
    : options_(std::move(options)), link_(options_.endpoint, std::move(random)) {
  if (options_.channels.empty() && options_.patterns.empty())
    throw std::invalid_argument("redis subscriber: no channel and no pattern to subscribe to");
  expected_ = options_.channels.size() + options_.patterns.size();
}

void RedisSubscriber::subscribe_all() {
  confirmations_ = 0;
  if (!options_.channels.empty()) append_list(link_.context(), "SUBSCRIBE", options_.channels);
  if (!options_.patterns.empty()) append_list(link_.context(), "PSUBSCRIBE", options_.patterns);
  subscribed_generation_ = link_.generation();
}

void RedisSubscriber::handle(const redisReply* r, std::vector<RedisPubSubMessage>& out) {
  if (r->type != REDIS_REPLY_ARRAY || r->elements < 3) return;
  const std::string_view kind = str(r->element[0]);
  if (kind == "message") {
    out.push_back({std::string(str(r->element[1])), {}, std::string(str(r->element[2]))});
  } else if (kind == "pmessage" && r->elements >= 4) {
    out.push_back({std::string(str(r->element[2])), std::string(str(r->element[1])),
                   std::string(str(r->element[3]))});
  } else if (kind == "subscribe" || kind == "psubscribe") {
    ++confirmations_;
  }
}

std::size_t RedisSubscriber::poll(std::chrono::milliseconds timeout,
                                  std::vector<RedisPubSubMessage>& out) {
  const auto deadline = Clock::now() + timeout;
  const std::size_t before = out.size();
  if (!link_.step(deadline)) return 0;
  if (subscribed_generation_ != link_.generation()) subscribe_all();
  while (true) {
    bool error = !link_.flush_output();
    while (!error) {
      ReplyPtr r = link_.next_reply(error);
      if (!r) break;
      handle(r.get(), out);
    }
    if (error || link_.state() != LinkState::Ready) break;
    if (out.size() > before || Clock::now() >= deadline) break;
    if (!link_.wait_io(deadline)) break;
  }
  return out.size() - before;
}

}  // namespace shmbus::bridge::transport
