#include "transport/amqp_consumer.hpp"

#include <stdexcept>
#include <thread>

namespace shmbus::bridge::transport {
namespace {

std::string field_text(const amqp_field_value_t& v) {
  switch (v.kind) {
    case AMQP_FIELD_KIND_UTF8:
    case AMQP_FIELD_KIND_BYTES:
      return to_string(v.value.bytes);
    case AMQP_FIELD_KIND_BOOLEAN:
      return v.value.boolean ? "true" : "false";
    case AMQP_FIELD_KIND_I8:
      return std::to_string(v.value.i8);
    case AMQP_FIELD_KIND_U8:
      return std::to_string(v.value.u8);
    case AMQP_FIELD_KIND_I16:
      return std::to_string(v.value.i16);
    case AMQP_FIELD_KIND_U16:
      return std::to_string(v.value.u16);
    case AMQP_FIELD_KIND_I32:
      return std::to_string(v.value.i32);
    case AMQP_FIELD_KIND_U32:
      return std::to_string(v.value.u32);
    case AMQP_FIELD_KIND_I64:
      return std::to_string(v.value.i64);
    case AMQP_FIELD_KIND_U64:
    case AMQP_FIELD_KIND_TIMESTAMP:
      return std::to_string(v.value.u64);
    case AMQP_FIELD_KIND_F32:
      return std::to_string(v.value.f32);
    case AMQP_FIELD_KIND_F64:
      return std::to_string(v.value.f64);
    default:
      return {};  // tables, arrays, decimals: not carried
  }
}

}  // namespace

AmqpConsumer::AmqpConsumer(AmqpConsumerOptions options, Backoff::Random random)
    : options_(std::move(options)),
      link_(
          options_.endpoint, [this](AmqpLink& l) { return setup(l); }, std::move(random)) {
  if (options_.queue.empty()) throw std::invalid_argument("amqp consumer: the queue name is empty");
  if (options_.prefetch == 0) options_.prefetch = 1;
}

std::string AmqpConsumer::setup(AmqpLink& link) {
  amqp_connection_state_t c = link.conn();
  if (!options_.exchange.empty()) {
    amqp_exchange_declare(c, AmqpLink::channel, as_bytes(options_.exchange),
                          as_bytes(options_.exchange_type), 0, 1, 0, 0, amqp_empty_table);
    if (auto e = link.rpc_error(("exchange.declare " + options_.exchange).c_str()); !e.empty())
      return e;
  }
  amqp_queue_declare(c, AmqpLink::channel, as_bytes(options_.queue), 0, options_.durable ? 1 : 0, 0,
                     0, amqp_empty_table);
  if (auto e = link.rpc_error(("queue.declare " + options_.queue).c_str()); !e.empty()) return e;
  for (const auto& key : options_.bindings) {
    amqp_queue_bind(c, AmqpLink::channel, as_bytes(options_.queue), as_bytes(options_.exchange),
                    as_bytes(key), amqp_empty_table);
    if (auto e = link.rpc_error(("queue.bind " + key).c_str()); !e.empty()) return e;
  }
  amqp_basic_qos(c, AmqpLink::channel, 0, options_.prefetch, 0);
  if (auto e = link.rpc_error("basic.qos"); !e.empty()) return e;
  amqp_basic_consume(c, AmqpLink::channel, as_bytes(options_.queue), amqp_empty_bytes, 0, 0, 0,
                     amqp_empty_table);
  return link.rpc_error(("basic.consume " + options_.queue).c_str());
}

bool AmqpConsumer::connect(std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (!link_.step()) {
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_until(std::min(deadline, link_.next_attempt()));
  }
  return true;
}

std::size_t AmqpConsumer::poll(std::chrono::milliseconds timeout, std::vector<AmqpDelivery>& out) {
  const auto deadline = Clock::now() + timeout;
  const std::size_t before = out.size();
  if (!link_.step()) return 0;
  while (true) {
    amqp_frame_t frame{};
    // After the first delivery, take only what is already buffered.
    const auto until = out.size() > before ? Clock::now() : deadline;
    const AmqpLink::Read rd = link_.read_frame(frame, until);
    if (rd != AmqpLink::Read::Frame) break;
    if (frame.frame_type != AMQP_FRAME_METHOD ||
        frame.payload.method.id != AMQP_BASIC_DELIVER_METHOD)
      continue;
    const auto* d = static_cast<const amqp_basic_deliver_t*>(frame.payload.method.decoded);
    AmqpDelivery delivery;
    delivery.exchange = to_string(d->exchange);
    delivery.routing_key = to_string(d->routing_key);
    delivery.redelivered = d->redelivered != 0;
    delivery.tag = {link_.generation(), d->delivery_tag};
    amqp_message_t msg{};
    const amqp_rpc_reply_t rr = amqp_read_message(link_.conn(), AmqpLink::channel, &msg, 0);
    if (rr.reply_type != AMQP_RESPONSE_NORMAL) {
      link_.lose("reading a delivery's content failed");
      break;
    }
    delivery.body = to_string(msg.body);
    const amqp_basic_properties_t& pr = msg.properties;
    if ((pr._flags & AMQP_BASIC_CONTENT_TYPE_FLAG) != 0)
      delivery.content_type = to_string(pr.content_type);
    if ((pr._flags & AMQP_BASIC_MESSAGE_ID_FLAG) != 0)
      delivery.message_id = to_string(pr.message_id);
    if ((pr._flags & AMQP_BASIC_TYPE_FLAG) != 0) delivery.type = to_string(pr.type);
    if ((pr._flags & AMQP_BASIC_APP_ID_FLAG) != 0) delivery.app_id = to_string(pr.app_id);
    if ((pr._flags & AMQP_BASIC_TIMESTAMP_FLAG) != 0) delivery.timestamp = pr.timestamp;
    if ((msg.properties._flags & AMQP_BASIC_HEADERS_FLAG) != 0) {
      for (int i = 0; i < msg.properties.headers.num_entries; ++i) {
        const auto& e = msg.properties.headers.entries[i];
        delivery.headers.emplace_back(to_string(e.key), field_text(e.value));
      }
    }
    amqp_destroy_message(&msg);
    out.push_back(std::move(delivery));
    if (!link_.frame_buffered()) amqp_maybe_release_buffers(link_.conn());
  }
  return out.size() - before;
}

SettleStatus AmqpConsumer::check(AmqpDeliveryTag tag) {
  if (link_.state() != LinkState::Ready) return SettleStatus::NotConnected;
  if (tag.generation != link_.generation()) return SettleStatus::Stale;
  return SettleStatus::Ok;
}

SettleStatus AmqpConsumer::sent(int rc) {
  if (rc == AMQP_STATUS_OK) return SettleStatus::Ok;
  link_.lose(std::string("sending an acknowledgement failed: ") + amqp_error_string2(rc));
  return SettleStatus::NotConnected;
}

SettleStatus AmqpConsumer::ack(AmqpDeliveryTag tag, bool multiple) {
  if (auto s = check(tag); s != SettleStatus::Ok) return s;
  return sent(amqp_basic_ack(link_.conn(), AmqpLink::channel, tag.tag, multiple ? 1 : 0));
}

SettleStatus AmqpConsumer::nack(AmqpDeliveryTag tag, bool requeue) {
  if (auto s = check(tag); s != SettleStatus::Ok) return s;
  return sent(amqp_basic_nack(link_.conn(), AmqpLink::channel, tag.tag, 0, requeue ? 1 : 0));
}

SettleStatus AmqpConsumer::reject(AmqpDeliveryTag tag, bool requeue) {
  if (auto s = check(tag); s != SettleStatus::Ok) return s;
  return sent(amqp_basic_reject(link_.conn(), AmqpLink::channel, tag.tag, requeue ? 1 : 0));
}

}  // namespace shmbus::bridge::transport
