#include <cctype>
#include <string>

// Name rules for buses, topics and participants.
#include <cstdio>

#include "shmbus/detail/layout.hpp"
#include "shmbus/detail/segments.hpp"
#include "shmbus/error.hpp"

namespace shmbus::detail {
namespace {

std::string quoted(std::string_view s) {
  std::string out = "\"";
  for (const char c : s) {
    if (std::isprint(static_cast<unsigned char>(c)) != 0) {
      out.push_back(c);
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", static_cast<unsigned char>(c));
      out += buf;
    }
  }
  return out + "\"";
}

std::string describe_char(char c) {
  if (c == '/') return "'/'";
  if (std::isprint(static_cast<unsigned char>(c)) != 0) return std::string("'") + c + "'";
  char buf[16];
  std::snprintf(buf, sizeof buf, "byte 0x%02x", static_cast<unsigned char>(c));
  return buf;
}

[[noreturn]] void invalid(std::string_view kind, std::string_view name, const std::string& why,
                          std::string_view rule) {
  throw Error(Errc::InvalidName, "invalid " + std::string(kind) + " name " + quoted(name) + ": " +
                                     why + "; use " + std::string(rule));
}

bool is_word_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '-';
}

}  // namespace

void validate_bus_name(std::string_view name) {
  constexpr std::string_view rule = "1-32 characters from [A-Za-z0-9_-], not starting with '-'";
  if (name.empty()) invalid("bus", name, "it is empty", rule);
  if (name.size() > kMaxBusName)
    invalid("bus", name, "it is " + std::to_string(name.size()) + " characters long", rule);
  for (std::size_t i = 0; i < name.size(); ++i) {
    if (!is_word_char(name[i]))
      invalid("bus", name,
              describe_char(name[i]) + " at position " + std::to_string(i) + " is not allowed",
              rule);
  }
  // "--help", "-rf": a name that a command line would take for an option.
  if (name.front() == '-')
    invalid("bus", name, "it starts with '-' (it would read as a command-line option)", rule);
}

void validate_topic_name(std::string_view name) {
  constexpr std::string_view rule =
      "1-64 characters from [A-Za-z0-9_.-], not starting with '-', with '.' only between words "
      "(\"md.quotes.AAPL\")";
  if (name.empty()) invalid("topic", name, "it is empty", rule);
  if (name.size() > kMaxTopicName)
    invalid("topic", name, "it is " + std::to_string(name.size()) + " characters long", rule);
  for (std::size_t i = 0; i < name.size(); ++i) {
    if (name[i] != '.' && !is_word_char(name[i]))
      invalid("topic", name,
              describe_char(name[i]) + " at position " + std::to_string(i) + " is not allowed",
              rule);
  }
  if (name.front() == '.' || name.back() == '.')
    invalid("topic", name, "it starts or ends with '.'", rule);
  if (name.front() == '-')
    invalid("topic", name, "it starts with '-' (it would read as a command-line option)", rule);
  if (name.find("..") != std::string_view::npos) invalid("topic", name, "it contains \"..\"", rule);
}

void validate_participant_name(std::string_view name) {
  constexpr std::string_view rule = "1-31 printable characters without spaces";
  if (name.empty()) invalid("participant", name, "it is empty", rule);
  if (name.size() > kMaxParticipantName)
    invalid("participant", name, "it is " + std::to_string(name.size()) + " characters long", rule);
  for (std::size_t i = 0; i < name.size(); ++i) {
    const auto c = static_cast<unsigned char>(name[i]);
    if (std::isgraph(c) == 0)
      invalid("participant", name,
              describe_char(name[i]) + " at position " + std::to_string(i) + " is not allowed",
              rule);
  }
}

}  // namespace shmbus::detail
