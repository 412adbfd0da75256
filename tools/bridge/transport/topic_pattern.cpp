#include "transport/topic_pattern.hpp"

namespace shmbus::bridge::transport {
namespace {

bool word_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '-';
}

constexpr std::string_view kRule =
    "a pattern is words separated by '.', each word [A-Za-z0-9_-]+, '*' (one word) or '>' "
    "(the rest, last word only), e.g. \"md.*.AAPL\" or \"md.>\"";

}  // namespace

std::string TopicPattern::check(std::string_view p) {
  auto fail = [&](std::string what) {
    return "bad topic pattern \"" + std::string(p) + "\": " + what + "; " + std::string(kRule);
  };
  if (p.empty()) return fail("it is empty");
  if (p.size() > 64) return fail("it is " + std::to_string(p.size()) + " characters long (max 64)");
  std::size_t start = 0;
  while (true) {
    const std::size_t dot = p.find('.', start);
    const std::string_view w =
        p.substr(start, dot == std::string_view::npos ? p.npos : dot - start);
    if (w.empty()) return fail("empty word at position " + std::to_string(start));
    if (w == ">" && dot != std::string_view::npos)
      return fail("'>' at position " + std::to_string(start) + " is not the last word");
    if (w != "*" && w != ">") {
      for (std::size_t i = 0; i < w.size(); ++i) {
        const char c = w[i];
        if (c == '*' || c == '>')
          return fail(std::string("'") + c + "' at position " + std::to_string(start + i) +
                      " is not a whole word");
        if (!word_char(c))
          return fail("character code " + std::to_string(static_cast<unsigned char>(c)) +
                      " at position " + std::to_string(start + i) + " is not allowed");
      }
    }
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  return {};
}

std::optional<TopicPattern> TopicPattern::parse(std::string_view pattern, std::string& error) {
  error = check(pattern);
  if (!error.empty()) return std::nullopt;
  TopicPattern t;
  t.text_ = std::string(pattern);
  std::size_t start = 0;
  while (true) {
    const std::size_t dot = pattern.find('.', start);
    t.words_.emplace_back(
        pattern.substr(start, dot == std::string_view::npos ? pattern.npos : dot - start));
    if (t.words_.back() == "*" || t.words_.back() == ">") t.exact_ = false;
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  t.tail_ = t.words_.back() == ">";
  return t;
}

TopicPattern::TopicPattern(std::string_view pattern) {
  std::string error;
  auto parsed = parse(pattern, error);
  if (!parsed) throw PatternError(error);
  *this = std::move(*parsed);
}

bool TopicPattern::matches(std::string_view topic) const noexcept {
  if (exact_) return topic == text_;
  std::size_t pos = 0;
  const std::size_t n = words_.size();
  for (std::size_t i = 0; i < n; ++i) {
    if (pos > topic.size()) return false;                // the topic ran out of words
    if (tail_ && i + 1 == n) return pos < topic.size();  // '>' needs at least one word
    const std::size_t dot = topic.find('.', pos);
    const std::size_t end = dot == std::string_view::npos ? topic.size() : dot;
    const std::string_view w = topic.substr(pos, end - pos);
    if (w.empty()) return false;
    if (words_[i] != "*" && w != words_[i]) return false;
    pos = dot == std::string_view::npos ? topic.size() + 1 : dot + 1;
  }
  return pos == topic.size() + 1;  // every word of the topic consumed
}

}  // namespace shmbus::bridge::transport
