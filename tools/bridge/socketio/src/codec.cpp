#include "shmbus/bridge/socketio/codec.hpp"

#include <array>
#include <charconv>

namespace shmbus::bridge::sio {

std::string_view to_string(CodecError error) noexcept {
  switch (error) {
    case CodecError::Ok:
      return "ok";
    case CodecError::Empty:
      return "empty packet";
    case CodecError::UnknownEngineType:
      return "unknown Engine.IO packet type (expected 0-6)";
    case CodecError::BadBase64:
      return "binary polling entry is not valid base64";
    case CodecError::UnknownSocketType:
      return "unknown Socket.IO packet type (expected 0-6)";
    case CodecError::BadAttachments:
      return "binary packet needs '<count>-' with a count between 1 and 1000";
    case CodecError::BadNamespace:
      return "namespace must start with '/' and be at most 256 bytes";
    case CodecError::BadAckId:
      return "ack id longer than 15 digits";
    case CodecError::BadJson:
      return "payload is not valid JSON";
    case CodecError::JsonTooDeep:
      return "payload JSON nests deeper than 64 levels";
    case CodecError::BadPayload:
      return "payload has the wrong shape for its packet type";
    case CodecError::BadPlaceholder:
      return "binary placeholder refers to no attachment";
  }
  return "unknown codec error";
}

// ------------------------------------------------------------------ base64

namespace {

constexpr std::string_view kAlphabet =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

constexpr std::array<std::int8_t, 256> make_decode_table() {
  std::array<std::int8_t, 256> t{};
  for (auto& v : t) v = -1;
  for (std::size_t i = 0; i < kAlphabet.size(); ++i) {
    t[static_cast<unsigned char>(kAlphabet[i])] = static_cast<std::int8_t>(i);
  }
  return t;
}
constexpr auto kDecode = make_decode_table();

bool is_digit(char c) noexcept {
  return c >= '0' && c <= '9';
}

}  // namespace

void base64_encode(std::string_view in, std::string& out) {
  out.reserve(out.size() + (in.size() + 2) / 3 * 4);
  std::size_t i = 0;
  const auto byte = [&](std::size_t k) {
    return static_cast<std::uint32_t>(static_cast<unsigned char>(in[k]));
  };
  for (; i + 3 <= in.size(); i += 3) {
    const std::uint32_t v = byte(i) << 16 | byte(i + 1) << 8 | byte(i + 2);
    out += kAlphabet[v >> 18 & 63];
    out += kAlphabet[v >> 12 & 63];
    out += kAlphabet[v >> 6 & 63];
    out += kAlphabet[v & 63];
  }
  const std::size_t rest = in.size() - i;
  if (rest == 1) {
    const std::uint32_t v = byte(i) << 16;
    out += kAlphabet[v >> 18 & 63];
    out += kAlphabet[v >> 12 & 63];
    out += "==";
  } else if (rest == 2) {
    const std::uint32_t v = byte(i) << 16 | byte(i + 1) << 8;
    out += kAlphabet[v >> 18 & 63];
    out += kAlphabet[v >> 12 & 63];
    out += kAlphabet[v >> 6 & 63];
    out += '=';
  }
}

bool base64_decode(std::string_view in, std::string& out) {
  // Padding is optional (Node's decoder accepts both); anything after padding is an error.
  std::size_t end = in.size();
  std::size_t pad = 0;
  while (end > 0 && in[end - 1] == '=' && pad < 2) {
    --end;
    ++pad;
  }
  if (end % 4 == 1) return false;
  if (pad > 0 && (end + pad) % 4 != 0) return false;
  out.reserve(out.size() + end / 4 * 3 + 2);
  std::uint32_t acc = 0;
  int bits = 0;
  for (std::size_t i = 0; i < end; ++i) {
    const std::int8_t v = kDecode[static_cast<unsigned char>(in[i])];
    if (v < 0) return false;
    acc = (acc << 6) | static_cast<std::uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xFF);
    }
  }
  return true;
}

// ------------------------------------------------------------------ Engine.IO

CodecError parse_eio_text(std::string_view frame, EioPacket& out) noexcept {
  if (frame.empty()) return CodecError::Empty;
  const char t = frame[0];
  if (t < '0' || t > '6') return CodecError::UnknownEngineType;
  out.type = static_cast<EioType>(t - '0');
  out.binary = false;
  out.data = frame.substr(1);
  return CodecError::Ok;
}

CodecError parse_polling_payload(std::string_view body, std::vector<EioPacket>& out,
                                 std::vector<std::string>& binaries) {
  if (body.empty()) return CodecError::Empty;
  // Decode binaries first into stable storage: views into `binaries` must not move later.
  std::size_t binary_count = 0;
  for (std::size_t pos = 0; pos <= body.size();) {
    const auto sep = body.find(kRecordSeparator, pos);
    const auto entry = body.substr(pos, sep == std::string_view::npos ? body.npos : sep - pos);
    if (!entry.empty() && entry[0] == 'b') ++binary_count;
    if (sep == std::string_view::npos) break;
    pos = sep + 1;
  }
  binaries.reserve(binaries.size() + binary_count);
  for (std::size_t pos = 0; pos <= body.size();) {
    const auto sep = body.find(kRecordSeparator, pos);
    const auto entry = body.substr(pos, sep == std::string_view::npos ? body.npos : sep - pos);
    if (entry.empty()) return CodecError::Empty;
    EioPacket packet;
    if (entry[0] == 'b') {
      std::string bytes;
      if (!base64_decode(entry.substr(1), bytes)) return CodecError::BadBase64;
      binaries.push_back(std::move(bytes));
      packet.type = EioType::Message;
      packet.binary = true;
      packet.data = binaries.back();
    } else if (const auto err = parse_eio_text(entry, packet); err != CodecError::Ok) {
      return err;
    }
    out.push_back(packet);
    if (sep == std::string_view::npos) break;
    pos = sep + 1;
  }
  return CodecError::Ok;
}

void append_polling_packet(std::string& out, std::string_view packet, bool binary) {
  if (!out.empty()) out += kRecordSeparator;
  if (binary) {
    out += 'b';
    base64_encode(packet, out);
  } else {
    out += packet;
  }
}

// ------------------------------------------------------------------ JSON helpers

bool json_depth_ok(std::string_view text, std::size_t max_depth) noexcept {
  std::size_t depth = 0;
  bool in_string = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > max_depth) return false;
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return true;
}

void dump_json(const json& value, std::string& out) {
  // The serializer appends to `out` directly (no temporary string per value).
  nlohmann::detail::serializer<json> s(nlohmann::detail::output_adapter<char>(out), ' ',
                                       json::error_handler_t::replace);
  s.dump(value, false, false, 0);
}

// ------------------------------------------------------------------ Socket.IO parse

namespace {

bool is_reserved_event(std::string_view name) noexcept {
  return name == "connect" || name == "connect_error" || name == "disconnect" ||
         name == "disconnecting" || name == "newListener" || name == "removeListener";
}

CodecError check_payload(SioType type, const json& p) {
  switch (type) {
    case SioType::Connect:
      return p.is_object() ? CodecError::Ok : CodecError::BadPayload;
    case SioType::Disconnect:
      return CodecError::BadPayload;  // carries no payload
    case SioType::ConnectError:
      return p.is_object() || p.is_string() ? CodecError::Ok : CodecError::BadPayload;
    case SioType::Event:
    case SioType::BinaryEvent:
      if (!p.is_array() || p.empty()) return CodecError::BadPayload;
      if (p[0].is_number()) return CodecError::Ok;
      if (!p[0].is_string() || is_reserved_event(p[0].get_ref<const std::string&>())) {
        return CodecError::BadPayload;
      }
      return CodecError::Ok;
    case SioType::Ack:
    case SioType::BinaryAck:
      return p.is_array() ? CodecError::Ok : CodecError::BadPayload;
  }
  return CodecError::BadPayload;
}

}  // namespace

CodecError parse_sio(std::string_view text, SioPacket& out) {
  if (text.empty()) return CodecError::Empty;
  const char t = text[0];
  if (t < '0' || t > '6') return CodecError::UnknownSocketType;
  out.type = static_cast<SioType>(t - '0');
  out.nsp = "/";
  out.ack_id.reset();
  out.attachments = 0;
  out.data = json(json::value_t::discarded);
  std::size_t i = 1;

  if (out.type == SioType::BinaryEvent || out.type == SioType::BinaryAck) {
    const std::size_t start = i;
    while (i < text.size() && is_digit(text[i]) && i - start < 5) ++i;
    if (i == start || i >= text.size() || text[i] != '-') return CodecError::BadAttachments;
    std::size_t n = 0;
    std::from_chars(text.data() + start, text.data() + i, n);
    if (n == 0 || n > kMaxAttachments) return CodecError::BadAttachments;
    out.attachments = n;
    ++i;  // '-'
  }

  if (i < text.size() && text[i] == '/') {
    const auto comma = text.find(',', i);
    const std::size_t end = comma == std::string_view::npos ? text.size() : comma;
    if (end - i > kMaxNamespaceLength) return CodecError::BadNamespace;
    out.nsp.assign(text.substr(i, end - i));
    i = comma == std::string_view::npos ? text.size() : comma + 1;
  }

  if (i < text.size() && is_digit(text[i])) {
    const std::size_t start = i;
    while (i < text.size() && is_digit(text[i])) ++i;
    if (i - start > 15) return CodecError::BadAckId;  // stays below 2^53, as JS numbers do
    std::uint64_t id = 0;
    std::from_chars(text.data() + start, text.data() + i, id);
    out.ack_id = id;
  }

  if (i < text.size()) {
    const std::string_view body = text.substr(i);
    if (!json_depth_ok(body, kMaxJsonDepth)) return CodecError::JsonTooDeep;
    out.data = json::parse(body.begin(), body.end(), nullptr, /*allow_exceptions=*/false);
    if (out.data.is_discarded()) return CodecError::BadJson;
    if (const auto err = check_payload(out.type, out.data); err != CodecError::Ok) return err;
  } else if (out.type == SioType::Event || out.type == SioType::BinaryEvent ||
             out.type == SioType::Ack || out.type == SioType::BinaryAck ||
             out.type == SioType::ConnectError) {
    return CodecError::BadPayload;  // these need a payload
  }
  if (out.ack_id && out.type != SioType::Event && out.type != SioType::BinaryEvent &&
      out.type != SioType::Ack && out.type != SioType::BinaryAck) {
    return CodecError::BadAckId;  // an id on connect/disconnect/error means nothing
  }
  return CodecError::Ok;
}

// ------------------------------------------------------------------ binaries

bool contains_binary(const json& value) noexcept {
  switch (value.type()) {
    case json::value_t::binary:
      return true;
    case json::value_t::array:
      for (const auto& v : value) {
        if (contains_binary(v)) return true;
      }
      return false;
    case json::value_t::object:
      for (const auto& [k, v] : value.items()) {
        if (contains_binary(v)) return true;
      }
      return false;
    default:
      return false;
  }
}

void deconstruct_binaries(json& value, std::vector<Frame>& binaries) {
  if (value.is_binary()) {
    const auto& bin = value.get_binary();
    auto bytes = std::make_shared<std::string>(bin.begin(), bin.end());
    const std::size_t num = binaries.size();
    binaries.push_back(std::move(bytes));
    value = json{{"_placeholder", true}, {"num", num}};
  } else if (value.is_array() || value.is_object()) {
    for (auto& v : value) deconstruct_binaries(v, binaries);
  }
}

CodecError reconstruct_binaries(json& value, std::vector<std::string>& attachments) {
  if (value.is_object()) {
    const auto ph = value.find("_placeholder");
    if (ph != value.end() && ph->is_boolean() && ph->get<bool>()) {
      const auto num = value.find("num");
      if (num == value.end() || !num->is_number_integer()) return CodecError::BadPlaceholder;
      const auto n = num->get<std::int64_t>();
      if (n < 0 || static_cast<std::uint64_t>(n) >= attachments.size()) {
        return CodecError::BadPlaceholder;
      }
      const std::string& bytes = attachments[static_cast<std::size_t>(n)];
      value = json::binary(json::binary_t::container_type(bytes.begin(), bytes.end()));
      return CodecError::Ok;
    }
  }
  if (value.is_array() || value.is_object()) {
    for (auto& v : value) {
      if (const auto err = reconstruct_binaries(v, attachments); err != CodecError::Ok) return err;
    }
  }
  return CodecError::Ok;
}

// ------------------------------------------------------------------ Socket.IO encode

namespace {

void append_header(std::string& out, SioType type, std::string_view nsp,
                   std::optional<std::uint64_t> ack_id, std::size_t attachments) {
  out += '4';  // Engine.IO message
  out += static_cast<char>('0' + static_cast<int>(type));
  if (type == SioType::BinaryEvent || type == SioType::BinaryAck) {
    out += std::to_string(attachments);
    out += '-';
  }
  if (!nsp.empty() && nsp != "/") {
    out += nsp;
    out += ',';
  }
  if (ack_id) out += std::to_string(*ack_id);
}

void append_args(std::string& out, const json& args) {
  if (args.is_array()) {
    for (const auto& a : args) {
      out += ',';
      dump_json(a, out);
    }
  } else {
    out += ',';
    dump_json(args, out);
  }
}

}  // namespace

std::string encode_sio(SioType type, std::string_view nsp, std::optional<std::uint64_t> ack_id,
                       std::size_t attachments, const json* payload) {
  std::string out;
  append_header(out, type, nsp, ack_id, attachments);
  if (payload != nullptr && !payload->is_discarded()) dump_json(*payload, out);
  return out;
}

std::string encode_event(std::string_view nsp, std::string_view event, const json& args,
                         std::optional<std::uint64_t> ack_id, std::vector<Frame>& binaries) {
  std::string out;
  out.reserve(64 + event.size());
  const json event_name(event);
  if (contains_binary(args)) {
    json copy = args;
    const std::size_t before = binaries.size();
    deconstruct_binaries(copy, binaries);
    append_header(out, SioType::BinaryEvent, nsp, ack_id, binaries.size() - before);
    out += '[';
    dump_json(event_name, out);
    append_args(out, copy);
  } else {
    append_header(out, SioType::Event, nsp, ack_id, 0);
    out += '[';
    dump_json(event_name, out);
    append_args(out, args);
  }
  out += ']';
  return out;
}

std::string encode_ack(std::string_view nsp, std::uint64_t ack_id, const json& args,
                       std::vector<Frame>& binaries) {
  std::string out;
  json list = args.is_array() ? args : json::array({args});
  if (contains_binary(list)) {
    const std::size_t before = binaries.size();
    deconstruct_binaries(list, binaries);
    append_header(out, SioType::BinaryAck, nsp, ack_id, binaries.size() - before);
  } else {
    append_header(out, SioType::Ack, nsp, ack_id, 0);
  }
  dump_json(list, out);
  return out;
}

}  // namespace shmbus::bridge::sio
