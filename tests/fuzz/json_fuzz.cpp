// libFuzzer: JSON -> FlatBuffer by the Quote and NewOrder schemas, and back.
// Whatever the text, from_json() either returns a buffer that passes the
// verifier and converts back to JSON, or throws InvalidJson; never a crash,
// a hang or a sanitizer report.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "shmbus/error.hpp"
#include "shmbus/messages.hpp"
#include "shmbus/schema/json_codec.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static shmbus::JsonCodec quote(shmbus::type_of<shmbus::md::Quote>());
  static shmbus::JsonCodec order(shmbus::type_of<shmbus::oms::NewOrder>());
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  for (shmbus::JsonCodec* codec : {&quote, &order}) {
    try {
      const auto buf = codec->from_json(text);
      if (!codec->verify(buf)) __builtin_trap();  // the codec built an invalid buffer
      (void)codec->to_json(buf);
    } catch (const shmbus::Error& e) {
      if (e.code() != shmbus::Errc::InvalidJson && e.code() != shmbus::Errc::InvalidMessage)
        __builtin_trap();
    }
  }
  return 0;
}
