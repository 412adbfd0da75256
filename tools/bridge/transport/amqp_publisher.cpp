#include "transport/amqp_publisher.hpp"

#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <thread>

namespace shmbus::bridge::transport {

const char* to_string(AmqpOutcome o) noexcept {
  switch (o) {
    case AmqpOutcome::Confirmed:
      return "confirmed";
    case AmqpOutcome::Returned:
      return "returned";
    case AmqpOutcome::Nacked:
      return "nacked";
    case AmqpOutcome::Unconfirmed:
      return "unconfirmed";
  }
  return "?";
}

AmqpPublisher::AmqpPublisher(AmqpPublisherOptions options, Backoff::Random random)
    : options_(std::move(options)),
      link_(
          options_.endpoint, [this](AmqpLink& l) { return setup(l); }, std::move(random)) {
  if (options_.window == 0) options_.window = 1;
}

std::string AmqpPublisher::setup(AmqpLink& link) {
  amqp_exchange_declare(link.conn(), AmqpLink::channel, as_bytes(options_.exchange),
                        as_bytes(options_.exchange_type), 0, options_.durable ? 1 : 0, 0, 0,
                        amqp_empty_table);
  if (auto e = link.rpc_error(("exchange.declare " + options_.exchange).c_str()); !e.empty())
    return e;
  amqp_confirm_select(link.conn(), AmqpLink::channel);
  return link.rpc_error("confirm.select");
}

bool AmqpPublisher::connect(std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (!link_.step()) {
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_until(std::min(deadline, link_.next_attempt()));
  }
  return true;
}

SubmitStatus AmqpPublisher::publish(AmqpMessage message) {
  return try_publish(message);
}

SubmitStatus AmqpPublisher::try_publish(AmqpMessage& message) {
  if (link_.state() != LinkState::Ready) return SubmitStatus::NotConnected;
  if (unsettled_ >= options_.window) return SubmitStatus::Full;
  if (tags_generation_ != link_.generation()) {
    // A fresh channel: confirm.select numbers deliveries from 1 again.
    tags_generation_ = link_.generation();
    first_tag_ = next_tag_ = 1;
    out_.clear();
    unwritten_ = 0;
  }
  amqp_basic_properties_t props{};
  props._flags = AMQP_BASIC_DELIVERY_MODE_FLAG;
  props.delivery_mode = message.persistent ? 2 : 1;
  const auto text = [&](const std::string& v, amqp_flags_t flag, amqp_bytes_t& field) {
    if (v.empty()) return;
    props._flags |= flag;
    field = as_bytes(v);
  };
  text(message.content_type, AMQP_BASIC_CONTENT_TYPE_FLAG, props.content_type);
  text(message.message_id, AMQP_BASIC_MESSAGE_ID_FLAG, props.message_id);
  text(message.type, AMQP_BASIC_TYPE_FLAG, props.type);
  text(message.app_id, AMQP_BASIC_APP_ID_FLAG, props.app_id);
  if (message.timestamp != 0) {
    props._flags |= AMQP_BASIC_TIMESTAMP_FLAG;
    props.timestamp = message.timestamp;
  }
  entries_.clear();
  if (!message.headers.empty()) {
    for (const auto& [k, v] : message.headers) {
      amqp_table_entry_t e{};
      e.key = as_bytes(k);
      if (const auto* n = std::get_if<std::int64_t>(&v)) {
        e.value.kind = AMQP_FIELD_KIND_I64;
        e.value.value.i64 = *n;
      } else {
        e.value.kind = AMQP_FIELD_KIND_UTF8;
        e.value.value.bytes = as_bytes(std::get<std::string>(v));
      }
      entries_.push_back(e);
    }
    props._flags |= AMQP_BASIC_HEADERS_FLAG;
    props.headers.num_entries = static_cast<int>(entries_.size());
    props.headers.entries = entries_.data();
  }
  const std::string error = encode(message, props);
  in_flight_.push_back(Entry{std::move(message), false, false, {}});
  ++next_tag_;
  ++unsettled_;
  if (!error.empty()) {
    link_.lose(error);
  } else if (++unwritten_ >= options_.batch_messages || out_.size() >= options_.batch_bytes) {
    (void)write_out();  // a failure shows on the next poll(), which reports the in-flight
  }
  return SubmitStatus::Queued;
}

namespace {

void put16(std::string& out, std::uint16_t v) {
  out += static_cast<char>(v >> 8);
  out += static_cast<char>(v & 0xff);
}
void put32(std::string& out, std::uint32_t v) {
  put16(out, static_cast<std::uint16_t>(v >> 16));
  put16(out, static_cast<std::uint16_t>(v & 0xffff));
}
void put64(std::string& out, std::uint64_t v) {
  put32(out, static_cast<std::uint32_t>(v >> 32));
  put32(out, static_cast<std::uint32_t>(v & 0xffffffff));
}

// Appends one frame whose payload `fill` writes into `room` bytes (returning the size
// written, or a negative rabbitmq-c status).
template <class Fill>
int put_frame(std::string& out, std::uint8_t type, std::size_t room, Fill fill) {
  const std::size_t start = out.size();
  out += static_cast<char>(type);
  put16(out, AmqpLink::channel);
  put32(out, 0);  // size, filled in below
  out.resize(start + 7 + room);
  const int n = fill(reinterpret_cast<std::uint8_t*>(out.data() + start + 7));
  if (n < 0) {
    out.resize(start);
    return n;
  }
  out.resize(start + 7 + static_cast<std::size_t>(n));
  const auto size = static_cast<std::uint32_t>(n);
  for (int i = 0; i < 4; ++i)
    out[start + 3 + static_cast<std::size_t>(i)] = static_cast<char>(size >> (24 - 8 * i));
  out += static_cast<char>(AMQP_FRAME_END);
  return n;
}

}  // namespace

std::string AmqpPublisher::encode(const AmqpMessage& m, const amqp_basic_properties_t& props) {
  // basic.publish as amqp_basic_publish() sends it (method, content header, body frames of
  // at most frame_max - 8 bytes), encoded by rabbitmq-c's own encoders, but appended to one
  // buffer that goes out in one write per batch: amqp_basic_publish() makes one send() per
  // frame, three per message.
  amqp_basic_publish_t method{};
  method.exchange = as_bytes(options_.exchange);
  method.routing_key = as_bytes(m.routing_key);
  method.mandatory = m.mandatory ? 1 : 0;
  const std::size_t mark = out_.size();
  const std::size_t room = 64 + options_.exchange.size() + m.routing_key.size() + 1024;
  int rc = put_frame(out_, AMQP_FRAME_METHOD, room, [&](std::uint8_t* p) {
    const std::uint32_t id = AMQP_BASIC_PUBLISH_METHOD;
    for (int i = 0; i < 4; ++i) p[i] = static_cast<std::uint8_t>(id >> (24 - 8 * i));
    const int n =
        amqp_encode_method(AMQP_BASIC_PUBLISH_METHOD, &method, amqp_bytes_t{room - 4, p + 4});
    return n < 0 ? n : n + 4;
  });
  if (rc >= 0) {
    // The properties: fixed fields plus the headers table; sized generously.
    std::size_t hroom =
        512 + m.content_type.size() + m.message_id.size() + m.type.size() + m.app_id.size();
    for (const auto& [k, v] : m.headers) {
      hroom += 16 + k.size();
      if (const auto* str = std::get_if<std::string>(&v)) hroom += str->size();
    }
    rc = put_frame(out_, AMQP_FRAME_HEADER, hroom, [&](std::uint8_t* p) {
      std::string fixed;
      put16(fixed, AMQP_BASIC_CLASS);
      put16(fixed, 0);  // weight
      put64(fixed, m.body.size());
      std::memcpy(p, fixed.data(), fixed.size());
      auto* decoded = const_cast<amqp_basic_properties_t*>(&props);
      const int n = amqp_encode_properties(AMQP_BASIC_CLASS, decoded,
                                           amqp_bytes_t{hroom - fixed.size(), p + fixed.size()});
      return n < 0 ? n : n + static_cast<int>(fixed.size());
    });
  }
  const int frame_max = amqp_get_frame_max(link_.conn());
  const std::size_t chunk =
      frame_max > 8 ? static_cast<std::size_t>(frame_max) - 8 : std::size_t{4096};
  for (std::size_t at = 0; rc >= 0 && at < m.body.size(); at += chunk) {
    const std::size_t n = std::min(chunk, m.body.size() - at);
    rc = put_frame(out_, AMQP_FRAME_BODY, n, [&](std::uint8_t* p) {
      std::memcpy(p, m.body.data() + at, n);
      return static_cast<int>(n);
    });
  }
  if (rc < 0) {
    out_.resize(mark);
    return std::string("encoding basic.publish failed: ") + amqp_error_string2(rc);
  }
  return {};
}

bool AmqpPublisher::write_out() {
  unwritten_ = 0;
  if (out_.empty()) return true;
  if (link_.state() != LinkState::Ready) {
    out_.clear();
    return false;
  }
  // Everything is written before returning: rabbitmq-c writes on this socket too (acks,
  // heartbeats), and must never land inside a half-written frame. A broker that reads
  // nothing for two heartbeat intervals is a lost connection.
  const int fd = amqp_get_sockfd(link_.conn());
  const auto deadline =
      Clock::now() +
      std::max<std::chrono::seconds>(2 * link_.endpoint().heartbeat, std::chrono::seconds(10));
  std::size_t done = 0;
  while (done < out_.size()) {
    const ssize_t n = ::send(fd, out_.data() + done, out_.size() - done, MSG_NOSIGNAL);
    if (n > 0) {
      done += static_cast<std::size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) && Clock::now() < deadline) {
      pollfd p{fd, POLLOUT, 0};
      (void)poll_until(p, deadline);
      continue;
    }
    out_.clear();
    link_.lose(n < 0 ? std::string("publish failed: ") + std::strerror(errno)
                     : std::string("publish failed: the broker stopped reading (write timed out)"));
    return false;
  }
  out_.clear();
  return true;
}

void AmqpPublisher::settle_one(Entry& e, bool ack, std::vector<AmqpCompletion>& out) {
  if (e.settled) return;
  e.settled = true;
  --unsettled_;
  AmqpOutcome o = ack ? AmqpOutcome::Confirmed : AmqpOutcome::Nacked;
  if (e.returned) o = AmqpOutcome::Returned;
  out.push_back({o, std::move(e.message), std::move(e.reason)});
}

void AmqpPublisher::settle(std::uint64_t tag, bool multiple, bool ack,
                           std::vector<AmqpCompletion>& out) {
  if (tag < first_tag_ || tag >= next_tag_) return;  // not ours (already settled)
  const std::size_t idx = tag - first_tag_;
  if (multiple) {
    for (std::size_t i = 0; i <= idx; ++i) settle_one(in_flight_[i], ack, out);
  } else {
    settle_one(in_flight_[idx], ack, out);
  }
  while (!in_flight_.empty() && in_flight_.front().settled) {
    in_flight_.pop_front();
    ++first_tag_;
  }
}

void AmqpPublisher::on_return(const amqp_basic_return_t& r, std::vector<AmqpCompletion>& out) {
  (void)out;
  amqp_message_t msg{};
  const amqp_rpc_reply_t rr = amqp_read_message(link_.conn(), AmqpLink::channel, &msg, 0);
  if (rr.reply_type != AMQP_RESPONSE_NORMAL) {
    link_.lose("reading a returned message failed");
    return;
  }
  const std::string key = to_string(r.routing_key);
  const std::string body = to_string(msg.body);
  amqp_destroy_message(&msg);
  for (auto& e : in_flight_) {
    if (!e.settled && !e.returned && e.message.routing_key == key && e.message.body == body) {
      e.returned = true;
      e.reason = std::to_string(r.reply_code) + " " + to_string(r.reply_text);
      return;
    }
  }
}

void AmqpPublisher::report_lost(std::vector<AmqpCompletion>& out) {
  for (auto& e : in_flight_) {
    if (e.settled) continue;
    out.push_back({AmqpOutcome::Unconfirmed, std::move(e.message), link_.last_error()});
  }
  in_flight_.clear();
  unsettled_ = 0;
  first_tag_ = next_tag_ = 1;
}

std::size_t AmqpPublisher::poll(std::chrono::microseconds timeout,
                                std::vector<AmqpCompletion>& out) {
  const auto deadline = Clock::now() + timeout;
  const std::size_t before = out.size();
  (void)write_out();
  if (link_.state() != LinkState::Ready) {
    out_.clear();
    unwritten_ = 0;
    if (!in_flight_.empty()) report_lost(out);
    if (!link_.step()) return out.size() - before;
  }
  while (true) {
    amqp_frame_t frame{};
    // Wait only while something is unconfirmed; otherwise just look (closes, returns).
    const auto until = unsettled_ > 0 ? deadline : Clock::now();
    const AmqpLink::Read rd = link_.read_frame(frame, until);
    if (rd == AmqpLink::Read::Lost) {
      report_lost(out);
      break;
    }
    if (rd == AmqpLink::Read::Timeout) break;
    if (frame.frame_type == AMQP_FRAME_METHOD) {
      const amqp_method_t& m = frame.payload.method;
      if (m.id == AMQP_BASIC_ACK_METHOD) {
        const auto* a = static_cast<const amqp_basic_ack_t*>(m.decoded);
        settle(a->delivery_tag, a->multiple != 0, true, out);
      } else if (m.id == AMQP_BASIC_NACK_METHOD) {
        const auto* n = static_cast<const amqp_basic_nack_t*>(m.decoded);
        settle(n->delivery_tag, n->multiple != 0, false, out);
      } else if (m.id == AMQP_BASIC_RETURN_METHOD) {
        on_return(*static_cast<const amqp_basic_return_t*>(m.decoded), out);
        if (link_.state() != LinkState::Ready) {
          report_lost(out);
          break;
        }
      }
    }
    if (!link_.frame_buffered()) {
      amqp_maybe_release_buffers(link_.conn());
      // Back to the caller as soon as something settled: the window has room again, and
      // waiting on for the rest would leave the broker without work (stop-and-go).
      if (unsettled_ == 0 || out.size() > before || Clock::now() >= deadline) break;
    }
  }
  return out.size() - before;
}

bool AmqpPublisher::flush(std::chrono::milliseconds timeout, std::vector<AmqpCompletion>& out) {
  const auto deadline = Clock::now() + timeout;
  do {
    (void)poll(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()), out);
    if (unsettled_ == 0) return true;
  } while (Clock::now() < deadline);
  return unsettled_ == 0;
}

}  // namespace shmbus::bridge::transport
