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

}  // namespace inspect
