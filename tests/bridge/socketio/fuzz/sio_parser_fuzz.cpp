// libFuzzer target: every input goes through each parser of the Engine.IO / Socket.IO codec.
// Properties: no crash, no sanitizer report, no exception; a packet that parses re-encodes
// to a form that parses to the same fields (encode/parse round trip).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "shmbus/bridge/socketio/codec.hpp"

using namespace shmbus::bridge::sio;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);

  std::vector<EioPacket> packets;
  std::vector<std::string> binaries;
  (void)parse_polling_payload(in, packets, binaries);

  EioPacket eio;
  if (parse_eio_text(in, eio) != CodecError::Ok || eio.type != EioType::Message) return 0;

  SioPacket p;
  if (parse_sio(eio.data, p) != CodecError::Ok) return 0;
  const std::string again = encode_sio(p.type, p.nsp, p.ack_id, p.attachments, &p.data);
  SioPacket q;
  if (parse_sio(std::string_view(again).substr(1), q) != CodecError::Ok || q.type != p.type ||
      q.nsp != p.nsp || q.ack_id != p.ack_id || q.attachments != p.attachments ||
      q.has_data() != p.has_data() || (p.has_data() && q.data != p.data)) {
    std::abort();  // the encoder and the parser disagree
  }
  if (p.attachments > 0 && p.has_data()) {
    std::vector<std::string> attachments(p.attachments, std::string("\x01\x02", 2));
    if (reconstruct_binaries(p.data, attachments) == CodecError::Ok) {
      std::vector<Frame> out;
      deconstruct_binaries(p.data, out);
    }
  }
  return 0;
}
