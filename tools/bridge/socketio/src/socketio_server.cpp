#include <utility>  // before Asio (g++ 12 + C++20)

#include "shmbus/bridge/socketio/socketio_server.hpp"

#include <algorithm>
#include <atomic>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

namespace shmbus::bridge::sio {

namespace asio = boost::asio;

struct SocketIoServer::Socket {
  SocketId id;
  std::uint64_t engine_id;
  std::string nsp;
  std::uint64_t next_ack = 0;
  std::uint64_t dropped = 0;
  std::unordered_map<std::uint64_t, std::function<void(json)>> acks;  // emit_with_ack waiting
};

struct SocketIoServer::Client {
  std::uint64_t engine_id;
  std::vector<std::pair<std::string, SocketId>> sockets;  // namespace -> socket
  std::optional<SioPacket> pending;  // a binary packet waiting for its attachments
  std::vector<std::string> attachments;
  asio::steady_timer connect_timer;

  Client(std::uint64_t id, asio::io_context& io) : engine_id(id), connect_timer(io) {}

  [[nodiscard]] SocketId find(std::string_view nsp) const noexcept {
    for (const auto& [n, id] : sockets) {
      if (n == nsp) return id;
    }
    return 0;
  }
};

SocketIoServer::SocketIoServer(net::HttpServer& http, SocketIoOptions options)
    : io_(http.context()),
      options_(std::move(options)),
      alive_(std::make_shared<bool>(true)),
      rng_(std::random_device{}()) {
  engine_ =
      std::make_shared<EngineIoServer>(io_, options_.engine, static_cast<EngineListener&>(*this));
  http.mount(options_.path, engine_);
}

SocketIoServer::~SocketIoServer() {
  // The application's callbacks may refer to objects already gone: no more calls.
  on_connect = nullptr;
  on_connected = nullptr;
  on_event = nullptr;
  on_disconnect = nullptr;
  on_overflow = nullptr;
  *alive_ = false;
  engine_->detach();
}

template <class F>
void SocketIoServer::run(F&& fn) {
  if (io_.get_executor().running_in_this_thread()) {
    fn();
  } else {
    asio::post(io_, [alive = std::weak_ptr<bool>(alive_), fn = std::forward<F>(fn)]() mutable {
      if (auto a = alive.lock(); a && *a) fn();
    });
  }
}

// ------------------------------------------------------------------ Engine.IO events

void SocketIoServer::on_open(EngineSession& session) {
  auto client = std::make_unique<Client>(session.id(), io_);
  client->connect_timer.expires_after(options_.connect_timeout);
  client->connect_timer.async_wait([this, alive = std::weak_ptr<bool>(alive_),
                                    id = session.id()](const boost::system::error_code& ec) {
    if (ec) return;
    auto a = alive.lock();
    if (!a || !*a) return;
    const auto it = clients_.find(id);
    if (it == clients_.end() || !it->second->sockets.empty()) return;
    if (auto* s = engine_->find(id)) s->close(CloseReason::ConnectTimeout);
  });
  clients_.emplace(session.id(), std::move(client));
}

void SocketIoServer::on_close(EngineSession& session, CloseReason reason) {
  const auto it = clients_.find(session.id());
  if (it == clients_.end()) return;
  const auto sockets = it->second->sockets;  // remove_socket edits the list
  for (const auto& [nsp, id] : sockets) remove_socket(id, to_string(reason), false);
  clients_.erase(session.id());
}

void SocketIoServer::protocol_error(EngineSession& session, CodecError /*error*/) {
  stats_.parse_errors.fetch_add(1, std::memory_order_relaxed);
  session.close(CloseReason::ParseError);
}

void SocketIoServer::on_message(EngineSession& session, std::string_view data, bool binary) {
  const auto it = clients_.find(session.id());
  if (it == clients_.end()) return;
  Client& client = *it->second;
  if (binary) {
    if (!client.pending) return protocol_error(session, CodecError::BadAttachments);
    client.attachments.emplace_back(data);
    if (client.attachments.size() < client.pending->attachments) return;
    SioPacket packet = std::move(*client.pending);
    client.pending.reset();
    std::vector<std::string> attachments = std::move(client.attachments);
    client.attachments.clear();
    if (reconstruct_binaries(packet.data, attachments) != CodecError::Ok) {
      return protocol_error(session, CodecError::BadPlaceholder);
    }
    return handle_packet(client, session, packet, attachments);
  }
  if (client.pending) return protocol_error(session, CodecError::BadAttachments);
  SioPacket packet;
  if (const auto err = parse_sio(data, packet); err != CodecError::Ok) {
    return protocol_error(session, err);
  }
  if (packet.attachments > 0) {
    client.pending = std::move(packet);
    client.attachments.clear();
    return;
  }
  std::vector<std::string> none;
  handle_packet(client, session, packet, none);
}

void SocketIoServer::handle_packet(Client& client, EngineSession& session, SioPacket& packet,
                                   std::vector<std::string>& /*attachments*/) {
  switch (packet.type) {
    case SioType::Connect:
      return handle_connect(client, session, packet);
    case SioType::Disconnect:
      if (const SocketId id = client.find(packet.nsp)) {
        remove_socket(id, "client namespace disconnect", false);
      }
      return;
    case SioType::Event:
    case SioType::BinaryEvent: {
      const SocketId id = client.find(packet.nsp);
      if (id == 0) {
        stats_.unroutable.fetch_add(1, std::memory_order_relaxed);
        return;
      }
      stats_.events_in.fetch_add(1, std::memory_order_relaxed);
      json& list = packet.data;
      const std::string name = list[0].is_string() ? list[0].get<std::string>() : list[0].dump();
      json args = json::array();
      for (std::size_t i = 1; i < list.size(); ++i) args.push_back(std::move(list[i]));
      Ack ack;
      if (packet.ack_id) {
        auto used = std::make_shared<std::atomic<bool>>(false);
        ack = [this, alive = std::weak_ptr<bool>(alive_), id, ack_id = *packet.ack_id,
               used](json reply) {
          if (used->exchange(true)) return;  // at most once
          auto a = alive.lock();
          if (!a || !*a) return;
          run([this, id, ack_id, reply = std::move(reply)] {
            const auto it = sockets_.find(id);
            if (it == sockets_.end()) return;
            std::vector<Frame> binaries;
            auto text = std::make_shared<const std::string>(
                encode_ack(it->second->nsp, ack_id, reply, binaries));
            if (send_raw_counted(*it->second, text, binaries, true) == SendResult::Ok) {
              stats_.acks_out.fetch_add(1, std::memory_order_relaxed);
            }
          });
        };
      }
      if (on_event) on_event(id, name, args, std::move(ack));
      return;
    }
    case SioType::Ack:
    case SioType::BinaryAck: {
      const SocketId id = client.find(packet.nsp);
      const auto sit = sockets_.find(id);
      if (sit == sockets_.end() || !packet.ack_id) {
        stats_.unroutable.fetch_add(1, std::memory_order_relaxed);
        return;
      }
      auto& acks = sit->second->acks;
      const auto ait = acks.find(*packet.ack_id);
      if (ait == acks.end()) {
        stats_.unroutable.fetch_add(1, std::memory_order_relaxed);
        return;
      }
      auto callback = std::move(ait->second);
      acks.erase(ait);
      stats_.acks_in.fetch_add(1, std::memory_order_relaxed);
      if (callback) callback(std::move(packet.data));
      return;
    }
    case SioType::ConnectError:  // only servers send it
      return protocol_error(session, CodecError::BadPayload);
  }
}

void SocketIoServer::handle_connect(Client& client, EngineSession& session, SioPacket& packet) {
  auto reply_error = [&](const json& error) {
    stats_.connect_rejected.fetch_add(1, std::memory_order_relaxed);
    (void)session.send(std::make_shared<const std::string>(
                           encode_sio(SioType::ConnectError, packet.nsp, std::nullopt, 0, &error)),
                       false);
  };
  if (std::find(options_.namespaces.begin(), options_.namespaces.end(), packet.nsp) ==
      options_.namespaces.end()) {
    return reply_error(json{{"message", "Invalid namespace"}});
  }
  if (client.find(packet.nsp) != 0) {
    return reply_error(json{{"message", "Already connected to this namespace"}});
  }
  const json auth = packet.has_data() ? std::move(packet.data) : json::object();
  const SocketId id = next_socket_++;
  if (on_connect) {
    ConnectResult result = on_connect(ConnectRequest{id, packet.nsp, auth});
    if (!result.accepted) {
      if (!result.error.is_object()) result.error = json{{"message", "Connection refused"}};
      return reply_error(result.error);
    }
  }
  // Socket.IO's own id, distinct from the Engine.IO sid (the spec keeps them apart).
  static constexpr std::string_view kChars =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string sid(20, ' ');
  std::uint64_t bits = rng_();
  for (std::size_t i = 0; i < sid.size(); ++i) {
    if (i == 10) bits = rng_();
    sid[i] = kChars[bits & 63];
    bits >>= 6;
  }
  auto socket = std::make_unique<Socket>();
  socket->id = id;
  socket->engine_id = session.id();
  socket->nsp = packet.nsp;
  sockets_.emplace(id, std::move(socket));
  by_nsp_[packet.nsp].insert(id);
  client.sockets.emplace_back(packet.nsp, id);
  client.connect_timer.cancel();
  stats_.connects.fetch_add(1, std::memory_order_relaxed);
  stats_.sockets_open.fetch_add(1, std::memory_order_relaxed);
  const json handshake{{"sid", sid}};
  (void)session.send(std::make_shared<const std::string>(
                         encode_sio(SioType::Connect, packet.nsp, std::nullopt, 0, &handshake)),
                     false);
  if (on_connected) on_connected(id, packet.nsp, auth);
}

void SocketIoServer::remove_socket(SocketId id, std::string_view reason, bool notify_client) {
  const auto it = sockets_.find(id);
  if (it == sockets_.end()) return;
  std::unique_ptr<Socket> socket = std::move(it->second);
  sockets_.erase(it);
  if (auto n = by_nsp_.find(socket->nsp); n != by_nsp_.end()) {
    n->second.erase(id);
    if (n->second.empty()) by_nsp_.erase(n);
  }
  if (const auto c = clients_.find(socket->engine_id); c != clients_.end()) {
    auto& list = c->second->sockets;
    std::erase_if(list, [id](const auto& p) { return p.second == id; });
  }
  if (notify_client) {
    if (auto* session = engine_->find(socket->engine_id)) {
      (void)session->send(std::make_shared<const std::string>(encode_sio(
                              SioType::Disconnect, socket->nsp, std::nullopt, 0, nullptr)),
                          false);
    }
  }
  stats_.sockets_open.fetch_sub(1, std::memory_order_relaxed);
  if (on_disconnect) on_disconnect(id, reason);
}

// ------------------------------------------------------------------ sending

SendResult SocketIoServer::send_raw_counted(Socket& socket, const Frame& text,
                                            const std::vector<Frame>& binaries,
                                            bool report_overflow) {
  EngineSession* session = engine_->find(socket.engine_id);
  if (session == nullptr) return SendResult::Closed;
  const SendResult r =
      binaries.empty() ? session->send(text, false) : session->send_group(text, binaries);
  if (r == SendResult::QueueFull) {
    stats_.dropped.fetch_add(1, std::memory_order_relaxed);
    ++socket.dropped;
    if (report_overflow && on_overflow) on_overflow(socket.id, socket.dropped, session->queued());
  }
  return r;
}

void SocketIoServer::emit(SocketId socket, std::string event, json args) {
  run([this, socket, event = std::move(event), args = std::move(args)] {
    const auto it = sockets_.find(socket);
    if (it == sockets_.end()) return;
    std::vector<Frame> binaries;
    auto text = std::make_shared<const std::string>(
        encode_event(it->second->nsp, event, args, std::nullopt, binaries));
    if (send_raw_counted(*it->second, text, binaries, true) == SendResult::Ok) {
      stats_.events_out.fetch_add(1, std::memory_order_relaxed);
    }
  });
}

void SocketIoServer::emit_with_ack(SocketId socket, std::string event, json args,
                                   std::function<void(json)> on_ack) {
  run([this, socket, event = std::move(event), args = std::move(args),
       on_ack = std::move(on_ack)]() mutable {
    const auto it = sockets_.find(socket);
    if (it == sockets_.end()) return;
    Socket& s = *it->second;
    const std::uint64_t ack_id = s.next_ack++;
    std::vector<Frame> binaries;
    auto text =
        std::make_shared<const std::string>(encode_event(s.nsp, event, args, ack_id, binaries));
    if (send_raw_counted(s, text, binaries, true) == SendResult::Ok) {
      stats_.events_out.fetch_add(1, std::memory_order_relaxed);
      s.acks.emplace(ack_id, std::move(on_ack));
    }
  });
}

std::shared_ptr<const EncodedPacket> SocketIoServer::encode(std::string_view nsp,
                                                            std::string_view event,
                                                            const json& args) {
  auto packet = std::make_shared<EncodedPacket>();
  packet->nsp = std::string(nsp);
  packet->text = std::make_shared<const std::string>(
      encode_event(nsp, event, args, std::nullopt, packet->binaries));
  return packet;
}

void SocketIoServer::send_now(SocketId id, const EncodedPacket& packet) {
  const auto it = sockets_.find(id);
  if (it == sockets_.end() || it->second->nsp != packet.nsp) {
    stats_.unroutable.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  if (send_raw_counted(*it->second, packet.text, packet.binaries, true) == SendResult::Ok) {
    stats_.events_out.fetch_add(1, std::memory_order_relaxed);
  }
}

void SocketIoServer::send(SocketId socket, std::shared_ptr<const EncodedPacket> packet) {
  run([this, socket, packet = std::move(packet)] { send_now(socket, *packet); });
}

void SocketIoServer::send(std::vector<SocketId> sockets,
                          std::shared_ptr<const EncodedPacket> packet) {
  run([this, sockets = std::move(sockets), packet = std::move(packet)] {
    for (const SocketId id : sockets) send_now(id, *packet);
  });
}

void SocketIoServer::broadcast(std::shared_ptr<const EncodedPacket> packet) {
  run([this, packet = std::move(packet)] {
    const auto n = by_nsp_.find(packet->nsp);
    if (n == by_nsp_.end()) return;
    // on_overflow may disconnect sockets (editing the set): report after the loop.
    std::vector<SocketId> overflowed;
    std::uint64_t sent = 0;
    for (const SocketId id : n->second) {
      const auto it = sockets_.find(id);
      if (it == sockets_.end()) continue;
      const auto r = send_raw_counted(*it->second, packet->text, packet->binaries, false);
      if (r == SendResult::Ok) {
        ++sent;
      } else if (r == SendResult::QueueFull) {
        overflowed.push_back(id);
      }
    }
    stats_.events_out.fetch_add(sent, std::memory_order_relaxed);
    if (!on_overflow) return;
    for (const SocketId id : overflowed) {
      const auto it = sockets_.find(id);
      if (it == sockets_.end()) continue;
      EngineSession* session = engine_->find(it->second->engine_id);
      on_overflow(id, it->second->dropped, session != nullptr ? session->queued() : 0);
    }
  });
}

void SocketIoServer::disconnect(SocketId socket, bool close_connection) {
  run([this, socket, close_connection] {
    const auto it = sockets_.find(socket);
    if (it == sockets_.end()) return;
    const std::uint64_t engine_id = it->second->engine_id;
    remove_socket(socket, "server namespace disconnect", true);
    if (close_connection) {
      if (auto* s = engine_->find(engine_id)) s->close(CloseReason::ServerClose);
    }
  });
}

void SocketIoServer::close_all() {
  run([this] { engine_->close_all(); });
}

}  // namespace shmbus::bridge::sio
