// Table tests of the Engine.IO / Socket.IO codec: valid packets decode to the right fields and
// re-encode to the same bytes; every malformed packet is rejected with its named error.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "shmbus/bridge/socketio/codec.hpp"

namespace shmbus::bridge::sio {
namespace {

// ------------------------------------------------------------------ Engine.IO

TEST(EioCodec, TextPacketsOfEveryType) {
  struct Case {
    std::string in;
    EioType type;
    std::string data;
  };
  const std::vector<Case> cases{
      {"0{\"sid\":\"x\"}", EioType::Open, "{\"sid\":\"x\"}"},
      {"1", EioType::Close, ""},
      {"2", EioType::Ping, ""},
      {"2probe", EioType::Ping, "probe"},
      {"3", EioType::Pong, ""},
      {"3probe", EioType::Pong, "probe"},
      {"4hello", EioType::Message, "hello"},
      {"4", EioType::Message, ""},
      {"5", EioType::Upgrade, ""},
      {"6", EioType::Noop, ""},
  };
  for (const auto& c : cases) {
    EioPacket p;
    ASSERT_EQ(parse_eio_text(c.in, p), CodecError::Ok) << c.in;
    EXPECT_EQ(p.type, c.type) << c.in;
    EXPECT_EQ(p.data, c.data) << c.in;
    EXPECT_FALSE(p.binary);
  }
}

TEST(EioCodec, MalformedTextPacketsNamed) {
  const std::vector<std::pair<std::string, CodecError>> cases{
      {"", CodecError::Empty},
      {"abc", CodecError::UnknownEngineType},  // the suites' "invalid packet format"
      {"7", CodecError::UnknownEngineType},
      {"b", CodecError::UnknownEngineType},
      {"\x1e", CodecError::UnknownEngineType},
  };
  for (const auto& [in, err] : cases) {
    EioPacket p;
    EXPECT_EQ(parse_eio_text(in, p), err) << in;
  }
}

TEST(EioCodec, PollingPayloadSplitsTextAndBinary) {
  std::vector<EioPacket> packets;
  std::vector<std::string> binaries;
  ASSERT_EQ(parse_polling_payload("4hello\x1e"
                                  "bAQIDBA==\x1e"
                                  "2\x1e"
                                  "4world",
                                  packets, binaries),
            CodecError::Ok);
  ASSERT_EQ(packets.size(), 4u);
  EXPECT_EQ(packets[0].type, EioType::Message);
  EXPECT_EQ(packets[0].data, "hello");
  EXPECT_TRUE(packets[1].binary);
  EXPECT_EQ(packets[1].data, std::string("\x01\x02\x03\x04", 4));
  EXPECT_EQ(packets[2].type, EioType::Ping);
  EXPECT_EQ(packets[3].data, "world");
}

TEST(EioCodec, PollingPayloadRoundTrip) {
  std::string out;
  append_polling_packet(out, "4test1", false);
  append_polling_packet(out, "4test2", false);
  append_polling_packet(out, std::string("\x01\x02\x03\x04", 4), true);
  EXPECT_EQ(out,
            "4test1\x1e"
            "4test2\x1e"
            "bAQIDBA==");
}

TEST(EioCodec, MalformedPollingPayloadsNamed) {
  const std::vector<std::pair<std::string, CodecError>> cases{
      {"", CodecError::Empty},
      {"abc", CodecError::UnknownEngineType},
      {"4a\x1e", CodecError::Empty},  // trailing separator: an empty packet
      {"\x1e"
       "4a",
       CodecError::Empty},
      {"4a\x1e\x1e"
       "4b",
       CodecError::Empty},
      {"4a\x1e"
       "x",
       CodecError::UnknownEngineType},
      {"b!!!!", CodecError::BadBase64},
      {"bA", CodecError::BadBase64},       // 1 char of a 4-char group cannot decode
      {"bAQ==AA", CodecError::BadBase64},  // data after padding
  };
  for (const auto& [in, err] : cases) {
    std::vector<EioPacket> packets;
    std::vector<std::string> binaries;
    EXPECT_EQ(parse_polling_payload(in, packets, binaries), err) << in;
  }
}

TEST(EioCodec, Base64RoundTripAllLengths) {
  std::string bytes;
  for (int len = 0; len < 40; ++len) {
    std::string enc;
    base64_encode(bytes, enc);
    std::string dec;
    ASSERT_TRUE(base64_decode(enc, dec)) << enc;
    EXPECT_EQ(dec, bytes);
    // Without padding too (Node accepts both).
    while (!enc.empty() && enc.back() == '=') enc.pop_back();
    dec.clear();
    ASSERT_TRUE(base64_decode(enc, dec)) << enc;
    EXPECT_EQ(dec, bytes);
    bytes += static_cast<char>(len * 37 + 11);
  }
}

// ------------------------------------------------------------------ Socket.IO

struct SioCase {
  std::string in;
  SioType type;
  std::string nsp;
  std::optional<std::uint64_t> ack;
  std::size_t attachments;
  std::string data;  // JSON text, empty: none
};

TEST(SioCodec, ValidPacketsDecodeAndReencode) {
  const std::vector<SioCase> cases{
      {"0", SioType::Connect, "/", {}, 0, ""},
      {"0{\"token\":\"123\"}", SioType::Connect, "/", {}, 0, "{\"token\":\"123\"}"},
      {"0/custom,", SioType::Connect, "/custom", {}, 0, ""},
      {"0/custom", SioType::Connect, "/custom", {}, 0, ""},  // no trailing comma
      {"0/custom,{\"token\":\"abc\"}", SioType::Connect, "/custom", {}, 0, "{\"token\":\"abc\"}"},
      {"1", SioType::Disconnect, "/", {}, 0, ""},
      {"1/custom,", SioType::Disconnect, "/custom", {}, 0, ""},
      {"2[\"message\",1,\"2\",{\"3\":[true]}]",
       SioType::Event,
       "/",
       {},
       0,
       "[\"message\",1,\"2\",{\"3\":[true]}]"},
      {"2456[\"message-with-ack\",1]", SioType::Event, "/", 456, 0, "[\"message-with-ack\",1]"},
      {"2/admin,12[\"x\"]", SioType::Event, "/admin", 12, 0, "[\"x\"]"},
      {"3456[1,\"2\",{\"3\":[false]}]", SioType::Ack, "/", 456, 0, "[1,\"2\",{\"3\":[false]}]"},
      {"4{\"message\":\"Invalid namespace\"}",
       SioType::ConnectError,
       "/",
       {},
       0,
       "{\"message\":\"Invalid namespace\"}"},
      {"52-[\"message\",{\"_placeholder\":true,\"num\":0},{\"_placeholder\":true,\"num\":1}]",
       SioType::BinaryEvent,
       "/",
       {},
       2,
       "[\"message\",{\"_placeholder\":true,\"num\":0},{\"_placeholder\":true,\"num\":1}]"},
      {"52-789[\"m\",{\"_placeholder\":true,\"num\":0},{\"_placeholder\":true,\"num\":1}]",
       SioType::BinaryEvent, "/", 789, 2,
       "[\"m\",{\"_placeholder\":true,\"num\":0},{\"_placeholder\":true,\"num\":1}]"},
      {"61-/admin,7[{\"_placeholder\":true,\"num\":0}]", SioType::BinaryAck, "/admin", 7, 1,
       "[{\"_placeholder\":true,\"num\":0}]"},
  };
  for (const auto& c : cases) {
    SioPacket p;
    ASSERT_EQ(parse_sio(c.in, p), CodecError::Ok) << c.in;
    EXPECT_EQ(p.type, c.type) << c.in;
    EXPECT_EQ(p.nsp, c.nsp) << c.in;
    EXPECT_EQ(p.ack_id, c.ack) << c.in;
    EXPECT_EQ(p.attachments, c.attachments) << c.in;
    EXPECT_EQ(p.has_data(), !c.data.empty()) << c.in;
    if (!c.data.empty()) {
      EXPECT_EQ(p.data, json::parse(c.data)) << c.in;
    }
    // Re-encoding gives the canonical form (a namespace always followed by its comma).
    const std::string again = encode_sio(p.type, p.nsp, p.ack_id, p.attachments, &p.data);
    std::string canonical = "4" + c.in;
    if (c.in == "0/custom") canonical += ",";
    EXPECT_EQ(again, canonical) << c.in;
  }
}

TEST(SioCodec, MalformedPacketsNamed) {
  const std::vector<std::pair<std::string, CodecError>> cases{
      {"", CodecError::Empty},
      {"abc", CodecError::UnknownSocketType},  // the suites' "4abc"
      {"7", CodecError::UnknownSocketType},
      {"2{}", CodecError::BadPayload},                        // the suites' "42{}": not an array
      {"2abc[\"message-with-ack\",1]", CodecError::BadJson},  // the suites' bad ack id
      {"2", CodecError::BadPayload},
      {"2[]", CodecError::BadPayload},
      {"2[{}]", CodecError::BadPayload},           // event name must be a string or number
      {"2[\"connect\"]", CodecError::BadPayload},  // reserved name
      {"2[\"disconnect\",1]", CodecError::BadPayload},
      {"2[\"a\"", CodecError::BadJson},
      {"2[\"a\"] x", CodecError::BadJson},  // trailing bytes
      {"0[1]", CodecError::BadPayload},     // connect payload must be an object
      {"0\"str\"", CodecError::BadPayload},
      {"1{}", CodecError::BadPayload},  // disconnect carries nothing
      {"3{}", CodecError::BadPayload},  // ack payload must be an array
      {"3", CodecError::BadPayload},
      {"4", CodecError::BadPayload},
      {"4[1]", CodecError::BadPayload},
      {"5[\"a\"]", CodecError::BadAttachments},  // binary without count
      {"5-[\"a\"]", CodecError::BadAttachments},
      {"50-[\"a\"]", CodecError::BadAttachments},
      {"51001-[\"a\"]", CodecError::BadAttachments},
      {"5123456-[\"a\"]", CodecError::BadAttachments},
      {"21234567890123456[\"a\"]", CodecError::BadAckId},
      {"0/x,5", CodecError::BadAckId},  // an ack id on CONNECT
      {"2/" + std::string(300, 'n') + ",[\"a\"]", CodecError::BadNamespace},
      {"2" + std::string(100, '[') + std::string(100, ']'), CodecError::JsonTooDeep},
      {"2[\"a\",\"\xff\xfe\"]", CodecError::BadJson},  // invalid UTF-8
  };
  for (const auto& [in, err] : cases) {
    SioPacket p;
    EXPECT_EQ(parse_sio(in, p), err) << in;
  }
}

TEST(SioCodec, ErrorsHaveNames) {
  for (int e = 0; e <= static_cast<int>(CodecError::BadPlaceholder); ++e) {
    EXPECT_NE(to_string(static_cast<CodecError>(e)), "unknown codec error");
  }
}

TEST(SioCodec, EventEncodingWithBinaryUsesPlaceholders) {
  std::vector<Frame> binaries;
  const json args = json::array({json::binary({1, 2, 3}), "x", json::binary({4, 5, 6})});
  const std::string text = encode_event("/", "message-back", args, std::nullopt, binaries);
  EXPECT_EQ(text,
            "452-[\"message-back\",{\"_placeholder\":true,\"num\":0},\"x\","
            "{\"_placeholder\":true,\"num\":1}]");
  ASSERT_EQ(binaries.size(), 2u);
  EXPECT_EQ(*binaries[0], std::string("\x01\x02\x03", 3));
  EXPECT_EQ(*binaries[1], std::string("\x04\x05\x06", 3));

  binaries.clear();
  EXPECT_EQ(encode_ack("/", 789, args, binaries),
            "462-789[{\"_placeholder\":true,\"num\":0},\"x\",{\"_placeholder\":true,\"num\":1}]");
  binaries.clear();
  EXPECT_EQ(encode_event("/custom", "auth", json::array({json::object()}), std::nullopt, binaries),
            "42/custom,[\"auth\",{}]");
  EXPECT_EQ(encode_event("/", "e", json(5), 3, binaries), "423[\"e\",5]");
  EXPECT_TRUE(binaries.empty());
}

TEST(SioCodec, ReconstructBinaries) {
  SioPacket p;
  ASSERT_EQ(parse_sio("52-[\"m\",{\"_placeholder\":true,\"num\":1},{\"k\":{\"_placeholder\":true,"
                      "\"num\":0}}]",
                      p),
            CodecError::Ok);
  std::vector<std::string> att{"AB", "CD"};
  ASSERT_EQ(reconstruct_binaries(p.data, att), CodecError::Ok);
  EXPECT_TRUE(p.data[1].is_binary());
  EXPECT_EQ(p.data[1].get_binary(), json::binary_t(std::vector<std::uint8_t>{'C', 'D'}));
  EXPECT_EQ(p.data[2]["k"].get_binary(), json::binary_t(std::vector<std::uint8_t>{'A', 'B'}));
  EXPECT_TRUE(contains_binary(p.data));

  for (const char* bad :
       {"[{\"_placeholder\":true,\"num\":2}]", "[{\"_placeholder\":true}]",
        "[{\"_placeholder\":true,\"num\":-1}]", "[{\"_placeholder\":true,\"num\":\"0\"}]"}) {
    json j = json::parse(bad);
    EXPECT_EQ(reconstruct_binaries(j, att), CodecError::BadPlaceholder) << bad;
  }
}

TEST(SioCodec, JsonDepthScanIgnoresBracketsInStrings) {
  EXPECT_TRUE(json_depth_ok("[\"[[[[[[[[[[\"]", 2));
  EXPECT_TRUE(json_depth_ok("[[1]]", 2));
  EXPECT_FALSE(json_depth_ok("[[[1]]]", 2));
  EXPECT_TRUE(json_depth_ok("[\"\\\"[[[[\"]", 1));  // escaped quote stays inside the string
}

TEST(SioCodec, InvalidUtf8IsReplacedNotThrown) {
  json j = std::string(
      "a\xff"
      "b");
  std::string out;
  EXPECT_NO_THROW(dump_json(j, out));
  EXPECT_FALSE(out.empty());
}

}  // namespace
}  // namespace shmbus::bridge::sio
