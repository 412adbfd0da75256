#include "transport/redis_publisher.hpp"

#include <algorithm>
#include <charconv>
#include <cstring>
#include <thread>

namespace shmbus::bridge::transport {

RedisMessage RedisMessage::publish(std::string channel, std::string payload, std::uint64_t token) {
  RedisMessage m;
  m.op = RedisOp::Publish;
  m.key = std::move(channel);
  m.payload = std::move(payload);
  m.token = token;
  return m;
}

RedisMessage RedisMessage::xadd(std::string stream, StreamId id, Fields fields,
                                std::uint64_t maxlen_approx, std::uint64_t token) {
  RedisMessage m;
  m.op = RedisOp::XAdd;
  m.key = std::move(stream);
  m.id = id;
  m.fields = std::move(fields);
  m.maxlen = maxlen_approx;
  m.token = token;
  return m;
}

std::size_t RedisMessage::wire_size() const noexcept {
  std::size_t n = key.size() + payload.size() + 16;
  for (const auto& [f, v] : fields) n += f.size() + v.size();
  return n;
}

const char* to_string(RedisOutcome o) noexcept {
  switch (o) {
    case RedisOutcome::Confirmed:
      return "confirmed";
    case RedisOutcome::Duplicate:
      return "duplicate";
    case RedisOutcome::Failed:
      return "failed";
    case RedisOutcome::Unconfirmed:
      return "unconfirmed";
  }
  return "?";
}

RedisPublisher::RedisPublisher(RedisPublisherOptions options, Backoff::Random random)
    : options_(std::move(options)), link_(options_.endpoint, std::move(random)) {
  if (options_.batch_messages == 0) options_.batch_messages = 1;
  if (options_.window_messages == 0) options_.window_messages = 1;
}

bool RedisPublisher::connect(std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (!link_.step(deadline)) {
    if (Clock::now() >= deadline) return false;
    if (link_.state() == LinkState::Disconnected) {
      // Waiting out the backoff delay, bounded by our deadline.
      std::this_thread::sleep_until(std::min(deadline, link_.next_attempt()));
    }
  }
  return true;
}

SubmitStatus RedisPublisher::submit(RedisMessage message) {
  return try_submit(message);
}

SubmitStatus RedisPublisher::try_submit(RedisMessage& message) {
  if (link_.state() != LinkState::Ready) return SubmitStatus::NotConnected;
  const std::size_t size = message.wire_size();
  if (in_flight_.size() >= options_.window_messages ||
      (!in_flight_.empty() && in_flight_bytes_ + size > options_.window_bytes)) {
    return SubmitStatus::Full;
  }
  append(message);
  in_flight_bytes_ += size;
  in_flight_.push_back({std::move(message), false});
  ++unwritten_messages_;
  unwritten_bytes_ += size;
  if (unwritten_messages_ >= options_.batch_messages || unwritten_bytes_ >= options_.batch_bytes) {
    unwritten_messages_ = 0;
    unwritten_bytes_ = 0;
    // A failed write shows on the next poll(), which reports the unanswered commands.
    (void)link_.flush_output();
  }
  return SubmitStatus::Queued;
}

namespace {

// RESP pieces written at `p` (room made by the caller: kArgRoom + the argument's bytes each).
constexpr std::size_t kArgRoom = 1 + 20 + 2 + 2;  // '$' <length> CRLF <bytes> CRLF

char* resp_number(char* p, char kind, std::size_t n) noexcept {
  *p++ = kind;
  p = std::to_chars(p, p + 20, n).ptr;
  *p++ = '\r';
  *p++ = '\n';
  return p;
}

char* resp_arg(char* p, std::string_view a) noexcept {
  p = resp_number(p, '$', a.size());
  std::memcpy(p, a.data(), a.size());
  p += a.size();
  *p++ = '\r';
  *p++ = '\n';
  return p;
}

// "<ms>-<seq>" into `buf`, without an allocation.
std::string_view format_id(char (&buf)[48], StreamId id) {
  auto r = std::to_chars(buf, buf + 24, id.ms);
  *r.ptr++ = '-';
  r = std::to_chars(r.ptr, buf + sizeof buf, id.seq);
  return {buf, static_cast<std::size_t>(r.ptr - buf)};
}

}  // namespace

void RedisPublisher::append(const RedisMessage& m) {
  // RESP: *<argc> then $<len> <bytes> per argument (binary-safe, as redisAppendCommandArgv),
  // straight into the link's output buffer (hiredis' own is freed and grown again on
  // every write: reallocs and copies were a fifth of the route's time per message), through
  // a cursor into room made once for the whole command (no capacity check per piece).
  std::string& out = link_.raw_output();
  // *<argc> CRLF, the command's name (7 bytes at most), the key.
  std::size_t room = (1 + 20 + 2) + (kArgRoom + 7) + (kArgRoom + m.key.size());
  if (m.op == RedisOp::Publish) {
    room += kArgRoom + m.payload.size();
  } else {
    room += (kArgRoom + 41) + (kArgRoom + 6) + (kArgRoom + 1) + (kArgRoom + 20);  // id, MAXLEN ~ n
    for (const auto& [f, v] : m.fields) room += 2 * kArgRoom + f.size() + v.size();
  }
  const std::size_t at = out.size();
  out.resize(at + room);
  char* p = out.data() + at;
  if (m.op == RedisOp::Publish) {
    p = resp_number(p, '*', 3);
    p = resp_arg(p, "PUBLISH");
    p = resp_arg(p, m.key);
    p = resp_arg(p, m.payload);
  } else {
    p = resp_number(p, '*', 3 + (m.maxlen > 0 ? 3 : 0) + 2 * m.fields.size());
    p = resp_arg(p, "XADD");
    p = resp_arg(p, m.key);
    if (m.maxlen > 0) {
      char buf[24];
      const auto r = std::to_chars(buf, buf + sizeof buf, m.maxlen);
      p = resp_arg(p, "MAXLEN");
      p = resp_arg(p, "~");
      p = resp_arg(p, std::string_view(buf, static_cast<std::size_t>(r.ptr - buf)));
    }
    char id[48];
    p = resp_arg(p, format_id(id, m.id));
    for (const auto& [f, v] : m.fields) {
      p = resp_arg(p, f);
      p = resp_arg(p, v);
    }
  }
  out.resize(static_cast<std::size_t>(p - out.data()));
}

void RedisPublisher::append_check(const RedisMessage& m) {
  char id[48];
  const std::string_view ids = format_id(id, m.id);
  std::string& out = link_.raw_output();
  const std::size_t at = out.size();
  out.resize(at + (1 + 20 + 2) + (kArgRoom + 6) + (kArgRoom + m.key.size()) +
             2 * (kArgRoom + ids.size()));
  char* p = resp_number(out.data() + at, '*', 4);
  p = resp_arg(p, "XRANGE");
  p = resp_arg(p, m.key);
  p = resp_arg(p, ids);
  p = resp_arg(p, ids);
  out.resize(static_cast<std::size_t>(p - out.data()));
}

void RedisPublisher::handle(ReplyPtr reply, std::vector<RedisCompletion>& out) {
  if (in_flight_.empty()) return;  // cannot happen: one reply per command
  const bool check = in_flight_.front().check;
  RedisCompletion c{RedisOutcome::Confirmed, std::move(in_flight_.front().message), 0, {}};
  in_flight_.pop_front();
  in_flight_bytes_ -= std::min(in_flight_bytes_, c.message.wire_size());
  if (reply->type == REDIS_REPLY_ERROR) {
    c.error = scrub(reply_text(reply.get()), options_.endpoint.password);
    // The server is not serving commands for now (loading its dataset, a busy script, a
    // replica without its master): not this message's fault. The connection is dropped
    // and every unanswered command sent again after the backoff, in order.
    for (const char* transient : {"LOADING", "BUSY", "TRYAGAIN", "MASTERDOWN"}) {
      if (c.error.starts_with(transient)) {
        c.outcome = RedisOutcome::Unconfirmed;
        link_.lose("server answered: " + c.error);
        out.push_back(std::move(c));
        return;
      }
    }
    // "ERR The ID specified in XADD is equal or smaller than the target stream top item":
    // a duplicate only if the entry is there. Asked with XRANGE, pipelined behind what is
    // in flight; the completion comes with that reply (rare: only after a reconnect).
    if (!check && c.message.op == RedisOp::XAdd &&
        c.error.find("equal or smaller") != std::string::npos) {
      append_check(c.message);
      in_flight_bytes_ += c.message.wire_size();
      in_flight_.push_back({std::move(c.message), true});
      // A failed write shows on the next read, which reports the unanswered commands.
      (void)link_.flush_output();
      return;
    }
    c.outcome = RedisOutcome::Failed;
  } else if (check) {
    if (reply->type == REDIS_REPLY_ARRAY && reply->elements > 0) {
      c.outcome = RedisOutcome::Duplicate;
    } else {
      c.outcome = RedisOutcome::Failed;
      c.error = "XADD refused: the stream " + c.message.key + " already holds entries after " +
                c.message.id.str() +
                " but not this one, and a stream only grows (the server lost its latest "
                "writes, or refused this entry while storing later ones): not stored";
    }
  } else if (reply->type == REDIS_REPLY_INTEGER) {
    c.receivers = reply->integer;
  }
  out.push_back(std::move(c));
}

std::size_t RedisPublisher::report_lost(std::vector<RedisCompletion>& out) {
  const std::size_t n = in_flight_.size();
  for (auto& f : in_flight_) {
    out.push_back({RedisOutcome::Unconfirmed, std::move(f.message), 0, link_.last_error()});
  }
  in_flight_.clear();
  in_flight_bytes_ = 0;
  unwritten_messages_ = 0;
  unwritten_bytes_ = 0;
  return n;
}

std::size_t RedisPublisher::poll(std::chrono::microseconds timeout,
                                 std::vector<RedisCompletion>& out) {
  const auto deadline = Clock::now() + timeout;
  const std::size_t before = out.size();
  if (link_.state() != LinkState::Ready) {
    if (!in_flight_.empty()) report_lost(out);
    if (!link_.step(deadline)) return out.size() - before;
  }
  unwritten_messages_ = 0;
  unwritten_bytes_ = 0;
  while (true) {
    bool error = !link_.flush_output();
    while (!error) {
      ReplyPtr r = link_.next_reply(error);
      if (!r) break;
      handle(std::move(r), out);
    }
    if (error || link_.state() != LinkState::Ready) {
      report_lost(out);
      break;
    }
    if (in_flight_.empty()) {
      // Idle: one look at the socket (no wait) so that a server that went away shows
      // as Disconnected now, not at the next submit.
      if (!link_.wait_io(Clock::now())) report_lost(out);
      break;
    }
    // Replies arrived: back to the caller, whose window has room again (waiting for the
    // rest would leave redis-server idle while the pipeline drains: stop-and-go).
    if (out.size() > before || Clock::now() >= deadline) break;
    if (!link_.wait_io(deadline)) {
      report_lost(out);
      break;
    }
  }
  return out.size() - before;
}

bool RedisPublisher::flush(std::chrono::milliseconds timeout, std::vector<RedisCompletion>& out) {
  const auto deadline = Clock::now() + timeout;
  do {
    (void)poll(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()), out);
    if (in_flight_.empty()) return true;
  } while (Clock::now() < deadline);
  return in_flight_.empty();
}

}  // namespace shmbus::bridge::transport
