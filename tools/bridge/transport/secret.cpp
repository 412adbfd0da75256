#include "transport/secret.hpp"

namespace shmbus::bridge::transport {
namespace {

void replace_all(std::string& text, std::string_view needle) {
  if (needle.empty()) return;
  std::size_t pos = 0;
  while ((pos = text.find(needle, pos)) != std::string::npos) {
    text.replace(pos, needle.size(), Secret::redacted);
    pos += Secret::redacted.size();
  }
}

std::string url_encode(std::string_view s) {
  static constexpr char hex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
        c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

}  // namespace

std::string scrub(std::string_view text, const Secret& secret) {
  std::string out(text);
  if (secret.empty()) return out;
  replace_all(out, secret.reveal());
  const std::string encoded = url_encode(secret.reveal());
  if (encoded != secret.reveal()) replace_all(out, encoded);
  return out;
}

}  // namespace shmbus::bridge::transport
