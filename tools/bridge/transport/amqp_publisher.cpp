#include "transport/amqp_publisher.hpp"

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
  const int rc = amqp_basic_publish(link_.conn(), AmqpLink::channel, as_bytes(options_.exchange),
                                    as_bytes(message.routing_key), message.mandatory ? 1 : 0, 0,
                                    &props, as_bytes(message.body));
  in_flight_.push_back(Entry{std::move(message), false, false, {}});
  ++next_tag_;
  ++unsettled_;
  if (rc != AMQP_STATUS_OK) link_.lose(std::string("publish failed: ") + amqp_error_string2(rc));
  return SubmitStatus::Queued;
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
  if (link_.state() != LinkState::Ready) {
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
      if (unsettled_ == 0 || Clock::now() >= deadline) break;
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
