// libFuzzer: untrusted bytes through the verifier, and the envelope's JSON
// conversion of whatever passes it. Bytes that fail are refused with a
// reason; bytes that pass convert to JSON (or a named InvalidMessage for a
// string that is not UTF-8). Never a crash or a sanitizer report.
#include <cstddef>
#include <cstdint>
#include <span>

#include "shmbus/error.hpp"
#include "shmbus/messages.hpp"
#include "shmbus/schema/json_codec.hpp"
#include "shmbus/schema/verifier.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static shmbus::JsonCodec quote(shmbus::type_of<shmbus::md::Quote>());
  static shmbus::JsonCodec report(shmbus::type_of<shmbus::oms::ExecutionReport>());
  static shmbus::JsonCodec exposure(shmbus::type_of<shmbus::risk::Exposure>());
  const std::span<const std::byte> bytes(reinterpret_cast<const std::byte*>(data), size);
  for (shmbus::JsonCodec* codec : {&quote, &report, &exposure}) {
    const std::string why = codec->verifier().check(bytes);
    if (why.empty() != codec->verify(bytes)) __builtin_trap();
    if (!why.empty()) continue;
    try {
      (void)codec->to_json(bytes);
    } catch (const shmbus::Error& e) {
      if (e.code() != shmbus::Errc::InvalidMessage) __builtin_trap();
    }
  }
  return 0;
}
