#pragma once
// TopicPattern: which bus topics a bridge route carries.
//
// Topics are words separated by '.' ("md.quotes.AAPL"). A pattern is the same, where a
// whole word may be a wildcard:
//   *   exactly one word            md.*.AAPL matches md.quotes.AAPL, not md.AAPL
//   >   one or more trailing words  md.> matches md.quotes and md.quotes.AAPL, not md
//   otherwise the word must be equal (case-sensitive).
// '>' may only be the last word; a wildcard mixed into a word ("md.q*") is an error, as
// is anything a topic name may not contain (see validate_topic_name in <shmbus/bus.hpp>:
// [A-Za-z0-9_.-], no empty word). The syntax is NATS's, which many users already know.
//
// Immutable after construction; matches() is noexcept, allocation-free and safe to call
// from any thread.
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace shmbus::bridge::transport {

class PatternError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

class TopicPattern {
 public:
  // Throws PatternError with a message naming the pattern, the position and the rule.
  explicit TopicPattern(std::string_view pattern);
  // Non-throwing form: nullopt and `error` filled on a bad pattern.
  [[nodiscard]] static std::optional<TopicPattern> parse(std::string_view pattern,
                                                         std::string& error);

  [[nodiscard]] bool matches(std::string_view topic) const noexcept;
  [[nodiscard]] bool is_exact() const noexcept { return exact_; }
  [[nodiscard]] const std::string& str() const noexcept { return text_; }

 private:
  TopicPattern() = default;
  [[nodiscard]] static std::string check(std::string_view pattern);

  std::string text_;
  std::vector<std::string> words_;  // "*" and ">" stand for the wildcards
  bool exact_ = true;
  bool tail_ = false;  // last word is '>'
};

}  // namespace shmbus::bridge::transport
