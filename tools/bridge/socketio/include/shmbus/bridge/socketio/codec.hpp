#pragma once
// Codec for Engine.IO v4 packets (and the HTTP long-polling payload) and Socket.IO v5 packets.
//
// Every parser validates strictly and returns a CodecError: malformed input is named, never a
// crash or an exception. JSON is parsed without exceptions and only after a nesting-depth scan
// (kMaxJsonDepth), so hostile input cannot exhaust the stack. Encoders build the exact wire
// text, ready to be queued on many connections at once (see socketio_server.hpp).
//
// Wire summary
//   Engine.IO packet : <type digit 0-6><data>          WebSocket text frame, or one polling entry
//                      binary: the raw WebSocket binary frame / "b"<base64> in a polling payload
//   polling payload  : packet \x1e packet \x1e ...
//   Socket.IO packet : <type 0-6>[<attachments>-][<nsp>,][<ack id>][<JSON>]  inside a "4" message
//
// Thread-safety: pure functions, callable from any thread.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace shmbus::bridge::sio {

using json = nlohmann::json;
using Frame = std::shared_ptr<const std::string>;

inline constexpr std::size_t kMaxJsonDepth = 64;
inline constexpr std::size_t kMaxNamespaceLength = 256;
inline constexpr std::size_t kMaxAttachments = 1000;
inline constexpr char kRecordSeparator = '\x1e';

enum class CodecError : std::uint8_t {
  Ok,
  Empty,              // nothing where a packet was expected
  UnknownEngineType,  // Engine.IO type not a digit 0-6
  BadBase64,          // "b" entry of a polling payload is not base64
  UnknownSocketType,  // Socket.IO type not a digit 0-6
  BadAttachments,     // binary packet without "<n>-", n = 0 or too many
  BadNamespace,       // namespace not "/...", too long, or not followed by ","
  BadAckId,           // ack id too long
  BadJson,            // not JSON, or trailing bytes after it
  JsonTooDeep,        // nesting above kMaxJsonDepth
  BadPayload,         // JSON of the wrong shape for the packet type
  BadPlaceholder,     // binary placeholder whose num is out of range or malformed
};
[[nodiscard]] std::string_view to_string(CodecError error) noexcept;

// ------------------------------------------------------------------ Engine.IO

enum class EioType : std::uint8_t { Open = 0, Close, Ping, Pong, Message, Upgrade, Noop };

struct EioPacket {
  EioType type = EioType::Noop;
  bool binary = false;    // a binary message (its bytes are in `data`)
  std::string_view data;  // text after the type digit, or the binary bytes
};

// One WebSocket text frame. `out.data` views into `frame`.
[[nodiscard]] CodecError parse_eio_text(std::string_view frame, EioPacket& out) noexcept;

// A polling request body. Text packets view into `body`; binary ones are decoded into
// `binaries` (and `data` views into that storage, which must outlive `out`).
[[nodiscard]] CodecError parse_polling_payload(std::string_view body, std::vector<EioPacket>& out,
                                               std::vector<std::string>& binaries);

// Appends one packet of a polling response: a separator if `out` is not empty, then the text
// packet, or "b" + base64 for a binary one.
void append_polling_packet(std::string& out, std::string_view packet, bool binary);

void base64_encode(std::string_view in, std::string& out);
[[nodiscard]] bool base64_decode(std::string_view in, std::string& out);

// ------------------------------------------------------------------ Socket.IO

enum class SioType : std::uint8_t {
  Connect = 0,
  Disconnect,
  Event,
  Ack,
  ConnectError,
  BinaryEvent,
  BinaryAck
};

struct SioPacket {
  SioType type = SioType::Event;
  std::string nsp = "/";
  std::optional<std::uint64_t> ack_id;
  std::size_t attachments = 0;
  json data;  // discarded (is_discarded()) when the packet carries none
  [[nodiscard]] bool has_data() const noexcept { return !data.is_discarded(); }
};

// Parses the Socket.IO packet carried by one Engine.IO message (without its "4").
[[nodiscard]] CodecError parse_sio(std::string_view text, SioPacket& out);

// True when the JSON text nests no deeper than `max_depth` (strings are skipped).
[[nodiscard]] bool json_depth_ok(std::string_view text, std::size_t max_depth) noexcept;

// JSON text of a value; invalid UTF-8 in strings is replaced, never thrown.
void dump_json(const json& value, std::string& out);

// Encodes a whole Engine.IO message packet "4<sio packet>" (the form queued on transports).
// `payload` may be null (no data). Binary values inside `payload` must have been replaced by
// placeholders already (see deconstruct_binaries).
[[nodiscard]] std::string encode_sio(SioType type, std::string_view nsp,
                                     std::optional<std::uint64_t> ack_id, std::size_t attachments,
                                     const json* payload);

// An event "42[<event>,args...]" (or "45<n>-..." when args hold binary values, whose bytes
// are appended to `binaries` in placeholder order). `args` is the argument list: an array;
// any other value is one argument.
[[nodiscard]] std::string encode_event(std::string_view nsp, std::string_view event,
                                       const json& args, std::optional<std::uint64_t> ack_id,
                                       std::vector<Frame>& binaries);
// An ack "43<id>[args...]" (or "46<n>-<id>[...]").
[[nodiscard]] std::string encode_ack(std::string_view nsp, std::uint64_t ack_id, const json& args,
                                     std::vector<Frame>& binaries);

// Replaces binary values by {"_placeholder":true,"num":i}, moving their bytes to `binaries`.
void deconstruct_binaries(json& value, std::vector<Frame>& binaries);
// Replaces placeholders by binary values taken from `attachments` (each at most once).
[[nodiscard]] CodecError reconstruct_binaries(json& value, std::vector<std::string>& attachments);
[[nodiscard]] bool contains_binary(const json& value) noexcept;

}  // namespace shmbus::bridge::sio
