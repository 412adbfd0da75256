#include "transport/redis_stream_consumer.hpp"

#include <stdexcept>

namespace shmbus::bridge::transport {
namespace {

std::string_view str(const redisReply* r) {
  if (r == nullptr || (r->type != REDIS_REPLY_STRING && r->type != REDIS_REPLY_STATUS)) return {};
  return {r->str, r->len};
}

}  // namespace

RedisStreamConsumer::RedisStreamConsumer(RedisStreamConsumerOptions options, Backoff::Random random)
    : options_(std::move(options)), link_(options_.endpoint, std::move(random)) {
  if (options_.stream.empty() || options_.group.empty() || options_.consumer.empty())
    throw std::invalid_argument(
        "redis stream consumer: stream, group and consumer names must all be given");
  if (options_.count == 0) options_.count = 1;
  if (options_.block.count() <= 0) options_.block = std::chrono::milliseconds{1};
  count_text_ = std::to_string(options_.count);
  block_text_ = std::to_string(options_.block.count());
  idle_text_ = std::to_string(options_.claim_idle.count());
}

void RedisStreamConsumer::append(std::initializer_list<std::string_view> args) {
  std::vector<const char*> argv;
  std::vector<std::size_t> lens;
  for (auto a : args) {
    argv.push_back(a.data());
    lens.push_back(a.size());
  }
  redisAppendCommandArgv(link_.context(), static_cast<int>(argv.size()), argv.data(), lens.data());
}

void RedisStreamConsumer::append_ack(const std::vector<std::string>& ids) {
  std::vector<const char*> argv{"XACK", options_.stream.c_str(), options_.group.c_str()};
  std::vector<std::size_t> lens{4, options_.stream.size(), options_.group.size()};
  for (const auto& id : ids) {
    argv.push_back(id.c_str());
    lens.push_back(id.size());
  }
  redisAppendCommandArgv(link_.context(), static_cast<int>(argv.size()), argv.data(), lens.data());
  expected_.push_back(Expect::Ack);
}

void RedisStreamConsumer::on_connected() {
  setup_generation_ = link_.generation();
  expected_.clear();
  read_outstanding_ = false;
  // What the caller holds will be re-delivered from the pending list; acks it gives
  // for the old copies are still valid (XACK names the entry, not the connection).
  unacked_.clear();
  phase_ = Phase::Pending;
  pending_cursor_ = "0";
  claim_cursor_ = "0-0";
  append({"XGROUP", "CREATE", options_.stream, options_.group, options_.create_from, "MKSTREAM"});
  expected_.push_back(Expect::Group);
  if (!acks_waiting_.empty()) append_ack(acks_waiting_);
  acks_waiting_.clear();
}

void RedisStreamConsumer::ack(const std::string& id) {
  unacked_.erase(id);
  if (link_.state() == LinkState::Ready && setup_generation_ == link_.generation()) {
    append({"XACK", options_.stream, options_.group, id});
    expected_.push_back(Expect::Ack);
  } else {
    acks_waiting_.push_back(id);
  }
}

void RedisStreamConsumer::ack(const std::vector<std::string>& ids) {
  if (ids.empty()) return;
  for (const auto& id : ids) unacked_.erase(id);
  if (link_.state() == LinkState::Ready && setup_generation_ == link_.generation()) {
    append_ack(ids);
  } else {
    acks_waiting_.insert(acks_waiting_.end(), ids.begin(), ids.end());
  }
}

void RedisStreamConsumer::issue_read() {
  if (read_outstanding_ || unacked_.size() >= options_.max_unacked) return;
  switch (phase_) {
    case Phase::Pending:
      append({"XREADGROUP", "GROUP", options_.group, options_.consumer, "COUNT", count_text_,
              "STREAMS", options_.stream, pending_cursor_});
      expected_.push_back(Expect::ReadPending);
      break;
    case Phase::Claim:
      append({"XAUTOCLAIM", options_.stream, options_.group, options_.consumer, idle_text_,
              claim_cursor_, "COUNT", count_text_});
      expected_.push_back(Expect::Claim);
      break;
    case Phase::New:
      append({"XREADGROUP", "GROUP", options_.group, options_.consumer, "COUNT", count_text_,
              "BLOCK", block_text_, "STREAMS", options_.stream, ">"});
      expected_.push_back(Expect::ReadNew);
      break;
  }
  read_outstanding_ = true;
}

void RedisStreamConsumer::parse_entries(const redisReply* list, bool redelivered,
                                        std::vector<StreamEntry>& out, std::string* last_id) {
  if (list == nullptr || list->type != REDIS_REPLY_ARRAY) return;
  for (std::size_t i = 0; i < list->elements; ++i) {
    const redisReply* e = list->element[i];
    if (e->type != REDIS_REPLY_ARRAY || e->elements < 2) continue;
    StreamEntry entry;
    entry.id = std::string(str(e->element[0]));
    entry.redelivered = redelivered;
    if (last_id != nullptr) *last_id = entry.id;
    const redisReply* f = e->element[1];
    if (f->type != REDIS_REPLY_ARRAY) {
      // A pending entry deleted from the stream (XDEL/MAXLEN): nothing to deliver;
      // acknowledge it so it leaves the pending list.
      append({"XACK", options_.stream, options_.group, entry.id});
      expected_.push_back(Expect::Ack);
      continue;
    }
    for (std::size_t k = 0; k + 1 < f->elements; k += 2) {
      entry.fields.emplace_back(std::string(str(f->element[k])),
                                std::string(str(f->element[k + 1])));
    }
    unacked_.insert(entry.id);
    out.push_back(std::move(entry));
  }
}

void RedisStreamConsumer::handle(Expect what, const redisReply* r, std::vector<StreamEntry>& out) {
  const bool is_error = r->type == REDIS_REPLY_ERROR;
  switch (what) {
    case Expect::Group:
      if (is_error && reply_text(r).rfind("BUSYGROUP", 0) != 0)
        link_.lose("XGROUP CREATE " + options_.stream + " " + options_.group +
                   " failed: " + reply_text(r));
      return;
    case Expect::Ack:
      if (!is_error && r->type == REDIS_REPLY_INTEGER)
        acks_confirmed_ += static_cast<std::uint64_t>(r->integer);
      return;
    case Expect::ReadPending:
    case Expect::ReadNew:
    case Expect::Claim:
      read_outstanding_ = false;
      if (is_error) {
        // NOGROUP after the stream was deleted: set up again on a fresh connection.
        link_.lose("read from stream " + options_.stream + " failed: " + reply_text(r));
        return;
      }
      break;
  }
  if (what == Expect::Claim) {
    // [next-cursor, [entries...], [deleted ids...]]
    if (r->type == REDIS_REPLY_ARRAY && r->elements >= 2) {
      claim_cursor_ = std::string(str(r->element[0]));
      parse_entries(r->element[1], true, out, nullptr);
    }
    if (claim_cursor_ == "0-0" || claim_cursor_.empty()) phase_ = Phase::New;
    return;
  }
  // XREADGROUP: nil (BLOCK timed out) or [[stream, [entries...]]]
  std::size_t got = 0;
  if (r->type == REDIS_REPLY_ARRAY && r->elements >= 1) {
    const redisReply* s = r->element[0];
    if (s->type == REDIS_REPLY_ARRAY && s->elements >= 2) {
      const std::size_t before = out.size();
      std::string last;
      got = s->element[1]->type == REDIS_REPLY_ARRAY ? s->element[1]->elements : 0;
      parse_entries(s->element[1], what == Expect::ReadPending, out, &last);
      (void)before;
      if (what == Expect::ReadPending && !last.empty()) pending_cursor_ = last;
    }
  }
  if (what == Expect::ReadPending && got == 0) {
    phase_ = options_.claim_idle.count() > 0 ? Phase::Claim : Phase::New;
  }
}

std::size_t RedisStreamConsumer::poll(std::chrono::milliseconds timeout,
                                      std::vector<StreamEntry>& out) {
  const auto deadline = Clock::now() + timeout;
  const std::size_t before = out.size();
  if (!link_.step(deadline)) return 0;
  if (setup_generation_ != link_.generation()) on_connected();
  while (true) {
    issue_read();
    bool error = !link_.flush_output();
    while (!error) {
      ReplyPtr r = link_.next_reply(error);
      if (!r) break;
      if (expected_.empty()) continue;  // cannot happen: one reply per command
      const Expect what = expected_.front();
      expected_.pop_front();
      handle(what, r.get(), out);
      if (link_.state() != LinkState::Ready) break;
    }
    if (error || link_.state() != LinkState::Ready) break;
    if (out.size() > before || Clock::now() >= deadline) break;
    issue_read();
    if (!link_.flush_output() || !link_.wait_io(deadline)) break;
  }
  return out.size() - before;
}

}  // namespace shmbus::bridge::transport
