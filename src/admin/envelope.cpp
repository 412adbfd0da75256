// The JSON envelope of a message (admin/envelope.hpp).
#include "shmbus/admin/envelope.hpp"

#include "shmbus/admin/encoding.hpp"
#include "shmbus/error.hpp"
#include "shmbus/schema/json_codec.hpp"

namespace shmbus {

namespace {

// The codec's JSON with the blanks outside strings taken out, so that a
// line reads like the metadata around it ({"symbol":"AAPL",...}).
std::string compact(const std::string& json) {
  std::string out;
  out.reserve(json.size());
  bool in_string = false;
  bool escaped = false;
  for (const char c : json) {
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
      out += c;
      continue;
    }
    if (c == ' ' || c == '\n' || c == '\t' || c == '\r') continue;
    if (c == '"') in_string = true;
    out += c;
  }
  return out;
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
}

EnvelopeWriter::EnvelopeWriter(EnvelopeWriter&&) noexcept = default;
EnvelopeWriter& EnvelopeWriter::operator=(EnvelopeWriter&&) noexcept = default;
EnvelopeWriter::~EnvelopeWriter() = default;

std::string EnvelopeWriter::data(const Message& m) const {
  if (!codec_)
    throw Error(Errc::UnknownType, "topic '" + topic_ + "' of bus '" + bus_ +
                                       "' is raw (untyped): its messages have no JSON form");
  return compact(codec_->to_json(m.data));
}

std::string EnvelopeWriter::message(const Message& m) const {
  const std::int64_t ts = m.meta.ts_ns();
  std::string line;
  line.reserve(256 + 2 * m.data.size());
  line += "{\"topic\":";
  line += json_quote(topic_);
  line += ",\"seq\":" + std::to_string(m.meta.seq);
  line += ",\"ts\":" + std::to_string(ts) + ",\"time\":\"" + utc_iso(ts) + "\"";
  line += ",\"producer\":" + std::to_string(m.meta.producer);
  line += ",\"id\":" + json_quote(message_id(bus_, topic_, m.meta.seq));
  line += ",\"bus\":" + json_quote(bus_);
  line += ",\"type\":" + json_quote(m.meta.type);
  if (m.meta.correlation != 0) line += ",\"correlation\":" + std::to_string(m.meta.correlation);
  if (codec_) {
    try {
      line += ",\"data\":" + compact(codec_->to_json(m.data));
    } catch (const Error& e) {
      line +=
          ",\"error\":" + json_quote(e.what()) + ",\"base64\":\"" + base64_encode(m.data) + "\"";
    }
  } else {
    line += ",\"size\":" + std::to_string(m.data.size());
    line += raw_ == RawEncoding::Hex ? ",\"hex\":\"" + hex_encode(m.data) + "\""
                                     : ",\"base64\":\"" + base64_encode(m.data) + "\"";
  }
  line += "}";
  return line;
}

std::string EnvelopeWriter::gap(const Gap& g) const {
  return "{\"gap\":{\"topic\":" + json_quote(topic_) + ",\"first\":" + std::to_string(g.first) +
         ",\"count\":" + std::to_string(g.count) + "}}";
}

}  // namespace shmbus
