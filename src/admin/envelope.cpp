// The JSON envelope of a message (admin/envelope.hpp).
#include "shmbus/admin/envelope.hpp"

#include <charconv>

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

void append_number(std::string& out, std::int64_t v) {
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
  // Built in place: no temporary per field (the bridge writes one per message forwarded).
  const std::int64_t ts = m.meta.ts_ns();
  std::string line;
  line.reserve(256 + 2 * m.data.size());
  line += head_;
  append_number(line, m.meta.seq);
  line += ",\"ts\":";
  append_number(line, ts);
  line += ",\"time\":\"";
  append_time(line, ts);
  line += "\",\"producer\":";
  append_number(line, static_cast<std::uint64_t>(m.meta.producer));
  line += ",\"id\":";
  line += id_open_;
  append_number(line, m.meta.seq);
  line += "\"";
  line += bus_field_;
  line += ",\"type\":";
  if (m.meta.type != type_) {
    type_ = std::string(m.meta.type);
    type_quoted_ = json_quote(type_);
  }
  line += type_quoted_;
  if (m.meta.correlation != 0) {
    line += ",\"correlation\":";
    append_number(line, static_cast<std::uint64_t>(m.meta.correlation));
  }
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
  line += "}";
  return line;
}

// utc_iso(ts), with the part down to the second formatted once per second.
void EnvelopeWriter::append_time(std::string& out, std::int64_t ts) const {
  const std::int64_t secs = ts >= 0 ? ts / 1'000'000'000 : (ts - 999'999'999) / 1'000'000'000;
  if (secs != time_secs_ || time_prefix_.empty()) {
    const std::string full = utc_iso(secs * 1'000'000'000);  // "...T12:03:07.000000000Z"
    time_prefix_ = full.substr(0, full.size() - 10);         // "...T12:03:07" + '.'
    time_secs_ = secs;
  }
  out += time_prefix_;
  char frac[9];
  auto f = static_cast<std::uint64_t>(ts - secs * 1'000'000'000);
  for (int i = 8; i >= 0; --i) {
    frac[i] = static_cast<char>('0' + f % 10);
    f /= 10;
  }
  out.append(frac, sizeof frac);
  out += 'Z';
}

std::string EnvelopeWriter::gap(const Gap& g) const {
  return "{\"gap\":{\"topic\":" + json_quote(topic_) + ",\"first\":" + std::to_string(g.first) +
         ",\"count\":" + std::to_string(g.count) + "}}";
}

}  // namespace shmbus
