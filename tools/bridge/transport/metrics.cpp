#include "transport/metrics.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <stdexcept>

namespace shmbus::bridge::transport {
namespace {

bool name_ok(std::string_view n, bool colon) {
  if (n.empty()) return false;
  for (std::size_t i = 0; i < n.size(); ++i) {
    const char c = n[i];
    const bool alpha =
        (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (colon && c == ':');
    const bool digit = c >= '0' && c <= '9';
    if (!(alpha || (i > 0 && digit))) return false;
  }
  return true;
}

void check_names(std::string_view name, const Labels& labels, bool counter) {
  if (!name_ok(name, true))
    throw std::invalid_argument("metric name \"" + std::string(name) +
                                "\" is not [a-zA-Z_:][a-zA-Z0-9_:]*");
  if (counter && !(name.size() > 6 && name.substr(name.size() - 6) == "_total"))
    throw std::invalid_argument("counter \"" + std::string(name) +
                                "\" must end in _total (Prometheus naming convention)");
  for (std::size_t i = 0; i < labels.size(); ++i) {
    const auto& l = labels[i].first;
    if (!name_ok(l, false) || l.rfind("__", 0) == 0)
      throw std::invalid_argument("label name \"" + l + "\" of metric \"" + std::string(name) +
                                  "\" is not [a-zA-Z_][a-zA-Z0-9_]* or starts with __");
    if (i > 0 && labels[i - 1].first == l)
      throw std::invalid_argument("label \"" + l + "\" given twice for metric \"" +
                                  std::string(name) + "\"");
  }
}

}  // namespace

std::string escape_label_value(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '"')
      out += "\\\"";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
  return out;
}

std::string escape_help(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
  return out;
}

std::string format_sample_value(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

MetricsRegistry::Family& MetricsRegistry::family(std::string_view name, std::string_view help,
                                                 Type type, Labels& labels) {
  std::sort(labels.begin(), labels.end());
  check_names(name, labels, type == Type::Counter);
  auto it = families_.find(name);
  if (it == families_.end()) {
    it = families_.emplace(std::string(name), Family{type, std::string(help), {}, {}}).first;
  } else if (it->second.type != type) {
    throw std::invalid_argument("metric \"" + std::string(name) +
                                "\" is already registered with another type");
  } else if (it->second.help != help) {
    throw std::invalid_argument("metric \"" + std::string(name) +
                                "\" is already registered with another help text");
  }
  return it->second;
}

Counter& MetricsRegistry::counter(std::string_view name, std::string_view help, Labels labels) {
  std::lock_guard lock(mutex_);
  auto& f = family(name, help, Type::Counter, labels);
  auto& slot = f.counters[labels];
  if (!slot) slot = std::make_unique<Counter>();
  return *slot;
}

Gauge& MetricsRegistry::gauge(std::string_view name, std::string_view help, Labels labels) {
  std::lock_guard lock(mutex_);
  auto& f = family(name, help, Type::Gauge, labels);
  auto& slot = f.gauges[labels];
  if (!slot) slot = std::make_unique<Gauge>();
  return *slot;
}

std::string MetricsRegistry::render() const {
  std::lock_guard lock(mutex_);
  std::string out;
  auto series = [&out](const std::string& name, const Labels& labels, const std::string& value) {
    out += name;
    if (!labels.empty()) {
      out += '{';
      for (std::size_t i = 0; i < labels.size(); ++i) {
        if (i) out += ',';
        out += labels[i].first;
        out += "=\"";
        out += escape_label_value(labels[i].second);
        out += '"';
      }
      out += '}';
    }
    out += ' ';
    out += value;
    out += '\n';
  };
  for (const auto& [name, f] : families_) {
    out += "# HELP " + name + ' ' + escape_help(f.help) + '\n';
    out += "# TYPE " + name + (f.type == Type::Counter ? " counter\n" : " gauge\n");
    for (const auto& [labels, c] : f.counters) series(name, labels, std::to_string(c->value()));
    for (const auto& [labels, g] : f.gauges) series(name, labels, format_sample_value(g->value()));
  }
  return out;
}

}  // namespace shmbus::bridge::transport
