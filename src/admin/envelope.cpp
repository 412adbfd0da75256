// The JSON envelope of a message (admin/envelope.hpp).
#include "shmbus/admin/envelope.hpp"

#include <charconv>
#include <cstring>

#include "shmbus/admin/encoding.hpp"
#include "shmbus/error.hpp"
#include "shmbus/schema/json_codec.hpp"

namespace shmbus {

namespace {

void append_number(std::string& out, std::uint64_t v) {
  char buf[24];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, static_cast<std::size_t>(r.ptr - buf));
}

}  // namespace

std::string message_id(std::string_view bus, std::string_view topic, std::uint64_t seq) {
  std::string id(bus);
  id += '/';
  id += topic;
  id += '/';
  id += std::to_string(seq);
  return id;
}

EnvelopeWriter::EnvelopeWriter(const Topic& topic, RawEncoding raw)
    : bus_(topic.bus()), topic_(topic.name()), raw_(raw) {
  if (!topic.type_name().empty())
    codec_ = std::make_unique<JsonCodec>(topic.schema(), topic.type_name());
  // What is the same in every envelope of the topic, quoted once.
  head_ = "{\"topic\":" + json_quote(topic_) + ",\"seq\":";
  id_open_ = json_quote(message_id(bus_, topic_, 0));
  id_open_.resize(id_open_.size() - 2);  // "<bus>/<topic>/ : the seq and the quote follow
  bus_field_ = ",\"bus\":" + json_quote(bus_);
  type_quoted_ = json_quote(type_);  // "" until the first typed message (raw topics)
}

EnvelopeWriter::EnvelopeWriter(EnvelopeWriter&&) noexcept = default;
EnvelopeWriter& EnvelopeWriter::operator=(EnvelopeWriter&&) noexcept = default;
EnvelopeWriter::~EnvelopeWriter() = default;

std::string EnvelopeWriter::data(const Message& m) const {
  if (!codec_)
    throw Error(Errc::UnknownType, "topic '" + topic_ + "' of bus '" + bus_ +
                                       "' is raw (untyped): its messages have no JSON form");
  std::string out;
  codec_->append_json(m.data, out);
  return out;
}

std::string EnvelopeWriter::message(const Message& m) const {
  std::string line;
  append_message(m, line);
  return line;
}

namespace {

char* put(char* p, std::string_view s) noexcept {
  std::memcpy(p, s.data(), s.size());
  return p + s.size();
}

template <typename T>
char* put_number(char* p, T v) noexcept {
  return std::to_chars(p, p + 24, v).ptr;
}

}  // namespace

void EnvelopeWriter::append_message(const Message& m, std::string& line) const {
  // The metadata through a cursor into room made once (its longest form is known), then the
  // data appended by the codec: no capacity check per field, one allocation at most (the
  // bridge writes one envelope per message forwarded).
  const std::int64_t ts = m.meta.ts_ns();
  if (m.meta.type != type_) {
    type_ = std::string(m.meta.type);
    type_quoted_ = json_quote(type_);
  }
  constexpr std::size_t kNumbers = 5 * 24 + 10 + 1;  // seq twice, ts, producer, correlation,
                                                     // the nanoseconds, 'Z'
  const std::size_t meta_max = head_.size() + id_open_.size() + bus_field_.size() +
                               type_quoted_.size() + kTimePrefixMax + kNumbers + 96;
  const std::size_t at = line.size();
  line.reserve(at + meta_max + 2 * m.data.size() + 128);
  line.resize(at + meta_max);
  char* p = line.data() + at;
  p = put(p, head_);
  p = put_number(p, m.meta.seq);
  p = put(p, ",\"ts\":");
  p = put_number(p, ts);
  p = put(p, ",\"time\":\"");
  p = put_time(p, ts);
  p = put(p, "\",\"producer\":");
  p = put_number(p, static_cast<std::uint64_t>(m.meta.producer));
  p = put(p, ",\"id\":");
  p = put(p, id_open_);
  p = put_number(p, m.meta.seq);
  *p++ = '"';
  p = put(p, bus_field_);
  p = put(p, ",\"type\":");
  p = put(p, type_quoted_);
  if (m.meta.correlation != 0) {
    p = put(p, ",\"correlation\":");
    p = put_number(p, static_cast<std::uint64_t>(m.meta.correlation));
  }
  line.resize(static_cast<std::size_t>(p - line.data()));
  if (codec_) {
    const std::size_t mark = line.size();
    try {
      line += ",\"data\":";
      codec_->append_json(m.data, line);
    } catch (const Error& e) {
      line.resize(mark);
      line +=
          ",\"error\":" + json_quote(e.what()) + ",\"base64\":\"" + base64_encode(m.data) + "\"";
    }
  } else {
    line += ",\"size\":";
    append_number(line, static_cast<std::uint64_t>(m.data.size()));
    line += raw_ == RawEncoding::Hex ? ",\"hex\":\"" + hex_encode(m.data) + "\""
                                     : ",\"base64\":\"" + base64_encode(m.data) + "\"";
  }
  line += '}';
}

// utc_iso(ts) at `p`, with the part down to the second formatted once per second.
char* EnvelopeWriter::put_time(char* p, std::int64_t ts) const {
  const std::int64_t secs = ts >= 0 ? ts / 1'000'000'000 : (ts - 999'999'999) / 1'000'000'000;
  if (secs != time_secs_ || time_prefix_.empty()) {
    const std::string full = utc_iso(secs * 1'000'000'000);  // "...T12:03:07.000000000Z"
    time_prefix_ = full.substr(0, full.size() - 10);         // "...T12:03:07" + '.'
    time_secs_ = secs;
  }
  p = put(p, std::string_view(time_prefix_).substr(0, kTimePrefixMax));
  auto f = static_cast<std::uint64_t>(ts - secs * 1'000'000'000);
  for (int i = 8; i >= 0; --i) {
    p[i] = static_cast<char>('0' + f % 10);
    f /= 10;
  }
  p += 9;
  *p++ = 'Z';
  return p;
}

std::string EnvelopeWriter::gap(const Gap& g) const {
  return "{\"gap\":{\"topic\":" + json_quote(topic_) + ",\"first\":" + std::to_string(g.first) +
         ",\"count\":" + std::to_string(g.count) + "}}";
}

}  // namespace shmbus
