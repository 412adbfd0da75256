#pragma once
// Secret: a credential (Redis AUTH password, AMQP password) that never prints.
//
// operator<<, fmt and nlohmann::json all render it as "***", so a Secret that slips into
// a log line, /health or an error message shows nothing. The value is reachable only
// through reveal(), which is greppable: the places that hand it to a client library.
// scrub() removes a secret from text that came back from elsewhere (a server's error
// reply, a URL someone logged) before it is shown. Copyable; not thread-safe beyond
// what std::string is.
#include <fmt/format.h>

#include <nlohmann/json.hpp>
#include <ostream>
#include <string>
#include <string_view>

namespace shmbus::bridge::transport {

class Secret {
 public:
  static constexpr std::string_view redacted = "***";

  Secret() = default;
  explicit Secret(std::string value) : value_(std::move(value)) {}

  [[nodiscard]] const std::string& reveal() const noexcept { return value_; }
  [[nodiscard]] bool empty() const noexcept { return value_.empty(); }

  friend std::ostream& operator<<(std::ostream& os, const Secret&) { return os << redacted; }
  friend void to_json(nlohmann::json& j, const Secret&) { j = std::string(redacted); }
  // Equality compares values without exposing them (constant time is not needed here:
  // comparisons are between our own configured credentials, never attacker input).
  friend bool operator==(const Secret& a, const Secret& b) { return a.value_ == b.value_; }

 private:
  std::string value_;
};

// `text` with every occurrence of the secret (and of its URL-encoded form) replaced by
// "***". An empty secret leaves the text unchanged.
[[nodiscard]] std::string scrub(std::string_view text, const Secret& secret);

}  // namespace shmbus::bridge::transport

template <>
struct fmt::formatter<shmbus::bridge::transport::Secret> : fmt::formatter<std::string_view> {
  template <typename Context>
  auto format(const shmbus::bridge::transport::Secret&, Context& ctx) const {
    return fmt::formatter<std::string_view>::format(shmbus::bridge::transport::Secret::redacted,
                                                    ctx);
  }
};
