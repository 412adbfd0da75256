#pragma once
// Utf8Validator: checks that a byte stream is well-formed UTF-8 (RFC 3629), fed in pieces.
//
// Design
//   RFC 6455 (8.1) fails a WebSocket connection whose text message is not valid UTF-8; a text
//   message may arrive in fragments that split a character anywhere, so the validator keeps
//   the state of an unfinished character between feed() calls. Well-formed means exactly the
//   byte sequences of RFC 3629 section 4:
//     00-7F | C2-DF 80-BF | E0 A0-BF 80-BF | E1-EC 80-BF 80-BF | ED 80-9F 80-BF
//     | EE-EF 80-BF 80-BF | F0 90-BF 80-BF 80-BF | F1-F3 80-BF 80-BF 80-BF | F4 80-8F 80-BF 80-BF
//   which rejects overlong forms (C0, C1, E0 80-9F, F0 80-8F), UTF-16 surrogates (ED A0-BF),
//   code points above U+10FFFF (F4 90-, F5-FF) and stray continuation bytes; a sequence cut
//   short is caught by finish(). The state is the number of continuation bytes still due and
//   the range allowed for the next one (only the second byte of a sequence has a narrower
//   range than 80-BF). ASCII, the bulk of JSON, is skipped eight bytes per step.
//
// Threading: a plain value; one validator per stream, used by one thread.

#include <cstdint>
#include <string_view>

namespace shmbus::bridge::net {

class Utf8Validator {
 public:
  // Checks the next bytes of the stream. False once the stream cannot be valid UTF-8, whatever
  // follows (and from then on: the failure is sticky until reset()).
  [[nodiscard]] bool feed(std::string_view bytes) noexcept;
  // The stream ended: true if everything fed was valid and no character is left unfinished.
  [[nodiscard]] bool finish() const noexcept { return !failed_ && need_ == 0; }
  [[nodiscard]] bool failed() const noexcept { return failed_; }
  void reset() noexcept { *this = Utf8Validator{}; }

 private:
  std::uint8_t need_ = 0;   // continuation bytes still due for the current character
  std::uint8_t lo_ = 0x80;  // the range of the next continuation byte
  std::uint8_t hi_ = 0xBF;
  bool failed_ = false;
};

// The whole of `bytes` is valid UTF-8.
[[nodiscard]] bool is_valid_utf8(std::string_view bytes) noexcept;

}  // namespace shmbus::bridge::net
