// bus-inspect — tables, times, rates and byte encodings for the subcommands.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <ctime>

#include "cli.hpp"

namespace inspect {

// ------------------------------------------------------------------ Table

Table::Table(std::vector<std::string> headers) {
  for (std::string& h : headers) {
    const bool right = !h.empty() && h.front() == '>';
    right_.push_back(right);
    headers_.push_back(right ? h.substr(1) : std::move(h));
  }
}

void Table::add(std::vector<std::string> row) {
  row.resize(headers_.size());
  rows_.push_back(std::move(row));
}

std::vector<std::string> Table::lines(std::size_t indent) const {
  std::vector<std::size_t> width(headers_.size());
  for (std::size_t c = 0; c < headers_.size(); ++c) width[c] = headers_[c].size();
  for (const auto& row : rows_)
    for (std::size_t c = 0; c < row.size(); ++c) width[c] = std::max(width[c], row[c].size());
  const auto line = [&](const std::vector<std::string>& cells) {
    std::string out(indent, ' ');
    for (std::size_t c = 0; c < cells.size(); ++c) {
      const std::size_t pad = width[c] - cells[c].size();
      if (c != 0) out += "  ";
      if (right_[c]) out.append(pad, ' ');
      out += cells[c];
      if (!right_[c] && c + 1 != cells.size()) out.append(pad, ' ');
    }
    while (!out.empty() && out.back() == ' ') out.pop_back();
    return out;
  };
  std::vector<std::string> out;
  out.push_back(line(headers_));
  for (const auto& row : rows_) out.push_back(line(row));
  return out;
}

// ------------------------------------------------------------------ times and numbers

std::string local_time(std::int64_t ns) {
  if (ns <= 0) return "-";
  const std::time_t secs = static_cast<std::time_t>(ns / 1'000'000'000);
  std::tm tm{};
  ::localtime_r(&secs, &tm);
  std::array<char, 32> buf{};
  std::strftime(buf.data(), buf.size(), "%Y-%m-%d %H:%M:%S", &tm);
  return buf.data();
}

std::string utc_iso(std::int64_t ns) {
  const std::int64_t secs = ns >= 0 ? ns / 1'000'000'000 : (ns - 999'999'999) / 1'000'000'000;
  const std::int64_t frac = ns - secs * 1'000'000'000;
  const std::time_t t = static_cast<std::time_t>(secs);
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  std::array<char, 32> date{};
  std::strftime(date.data(), date.size(), "%Y-%m-%dT%H:%M:%S", &tm);
  std::array<char, 48> out{};
  std::snprintf(out.data(), out.size(), "%s.%09lldZ", date.data(), static_cast<long long>(frac));
  return out.data();
}

std::string duration(std::int64_t ns) {
  if (ns < 0) ns = 0;
  std::array<char, 32> buf{};
  const std::int64_t ms = ns / 1'000'000;
  const std::int64_t s = ns / 1'000'000'000;
  if (ms < 1000) {
    std::snprintf(buf.data(), buf.size(), "%lldms", static_cast<long long>(ms));
  } else if (s < 60) {
    std::snprintf(buf.data(), buf.size(), "%.1fs", static_cast<double>(ms) / 1000.0);
  } else if (s < 3600) {
    std::snprintf(buf.data(), buf.size(), "%lldm%02llds", static_cast<long long>(s / 60),
                  static_cast<long long>(s % 60));
  } else if (s < 86400) {
    std::snprintf(buf.data(), buf.size(), "%lldh%02lldm", static_cast<long long>(s / 3600),
                  static_cast<long long>(s % 3600 / 60));
  } else {
    std::snprintf(buf.data(), buf.size(), "%lldd%02lldh", static_cast<long long>(s / 86400),
                  static_cast<long long>(s % 86400 / 3600));
  }
  return buf.data();
}

std::string ago(std::int64_t then_ns, std::int64_t now_ns) {
  if (then_ns <= 0) return "never";
  return duration(now_ns - then_ns) + " ago";
}

std::string rate_text(double r) {
  std::array<char, 32> buf{};
  if (!std::isfinite(r) || r < 0.0) r = 0.0;
  if (r < 10.0 && r > 0.0) {
    std::snprintf(buf.data(), buf.size(), "%.1f", r);
  } else if (r < 1000.0) {
    std::snprintf(buf.data(), buf.size(), "%.0f", r);
  } else if (r < 1e6) {
    std::snprintf(buf.data(), buf.size(), "%.1fk", r / 1e3);
  } else {
    std::snprintf(buf.data(), buf.size(), "%.2fM", r / 1e6);
  }
  return buf.data();
}

std::string bytes_text(std::uint64_t b) {
  std::array<char, 32> buf{};
  const double d = static_cast<double>(b);
  if (b < 1024) {
    std::snprintf(buf.data(), buf.size(), "%llu B", static_cast<unsigned long long>(b));
  } else if (b < (1u << 20)) {
    std::snprintf(buf.data(), buf.size(), "%.1f KiB", d / 1024.0);
  } else if (b < (1u << 30)) {
    std::snprintf(buf.data(), buf.size(), "%.1f MiB", d / (1024.0 * 1024.0));
  } else {
    std::snprintf(buf.data(), buf.size(), "%.1f GiB", d / (1024.0 * 1024.0 * 1024.0));
  }
  return buf.data();
}

// ------------------------------------------------------------------ encodings

namespace {
constexpr std::string_view kB64 =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int b64_value(char c) {
  const auto p = kB64.find(c);
  return p == std::string_view::npos ? -1 : static_cast<int>(p);
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}
}  // namespace

std::string base64_encode(const std::byte* data, std::size_t n) {
  std::string out;
  out.reserve((n + 2) / 3 * 4);
  for (std::size_t i = 0; i < n; i += 3) {
    std::uint32_t v = std::to_integer<std::uint32_t>(data[i]) << 16;
    if (i + 1 < n) v |= std::to_integer<std::uint32_t>(data[i + 1]) << 8;
    if (i + 2 < n) v |= std::to_integer<std::uint32_t>(data[i + 2]);
    out += kB64[(v >> 18) & 63];
    out += kB64[(v >> 12) & 63];
    out += i + 1 < n ? kB64[(v >> 6) & 63] : '=';
    out += i + 2 < n ? kB64[v & 63] : '=';
  }
  return out;
}

std::optional<std::vector<std::byte>> base64_decode(std::string_view text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' '))
    text.remove_suffix(1);
  while (!text.empty() && text.back() == '=') text.remove_suffix(1);
  if (text.size() % 4 == 1) return std::nullopt;
  std::vector<std::byte> out;
  std::uint32_t acc = 0;
  int bits = 0;
  for (const char c : text) {
    const int v = b64_value(c);
    if (v < 0) return std::nullopt;
    acc = (acc << 6) | static_cast<std::uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<std::byte>((acc >> bits) & 0xffu));
    }
  }
  return out;
}

std::string hex_encode(const std::byte* data, std::size_t n) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(2 * n);
  for (std::size_t i = 0; i < n; ++i) {
    const auto b = std::to_integer<unsigned>(data[i]);
    out += kHex[b >> 4];
    out += kHex[b & 15];
  }
  return out;
}

std::optional<std::vector<std::byte>> hex_decode(std::string_view text) {
  std::string digits;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == ':') continue;
    if (c == '0' && i + 1 < text.size() && (text[i + 1] == 'x' || text[i + 1] == 'X')) {
      ++i;
      continue;
    }
    if (hex_value(c) < 0) return std::nullopt;
    digits += c;
  }
  if (digits.size() % 2 != 0) return std::nullopt;
  std::vector<std::byte> out;
  for (std::size_t i = 0; i < digits.size(); i += 2)
    out.push_back(static_cast<std::byte>(hex_value(digits[i]) * 16 + hex_value(digits[i + 1])));
  return out;
}

}  // namespace inspect
