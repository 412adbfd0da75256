// Utf8Validator: a table of valid and invalid sequences (overlongs, surrogates, > U+10FFFF,
// truncated and stray bytes), every way of splitting them into two or three pieces (as
// WebSocket fragments do), and every 1-, 2- and 3-byte string (and a sample of 4-byte ones)
// against a decoder written from the definition of UTF-8.
#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "shmbus/bridge/net/utf8.hpp"

namespace shmbus::bridge::net {
namespace {

// Decodes character by character and checks the code point: shortest form, not a surrogate,
// at most U+10FFFF (RFC 3629 section 3). Slow and obvious, unlike the validator.
bool reference_valid(const std::string& s) {
  std::size_t i = 0;
  while (i < s.size()) {
    const auto b = static_cast<std::uint8_t>(s[i]);
    std::size_t len = 0;
    std::uint32_t cp = 0;
    if (b < 0x80) {
      ++i;
      continue;
    }
    if ((b & 0xE0U) == 0xC0U) {
      len = 2;
      cp = b & 0x1FU;
    } else if ((b & 0xF0U) == 0xE0U) {
      len = 3;
      cp = b & 0x0FU;
    } else if ((b & 0xF8U) == 0xF0U) {
      len = 4;
      cp = b & 0x07U;
    } else {
      return false;
    }
    if (i + len > s.size()) return false;
    for (std::size_t k = 1; k < len; ++k) {
      const auto c = static_cast<std::uint8_t>(s[i + k]);
      if ((c & 0xC0U) != 0x80U) return false;
      cp = (cp << 6) | (c & 0x3FU);
    }
    const std::uint32_t min = len == 2 ? 0x80 : len == 3 ? 0x800 : 0x10000;
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += len;
  }
  return true;
}

bool valid_in_pieces(const std::string& s, std::vector<std::size_t> cuts) {
  Utf8Validator v;
  std::size_t from = 0;
  cuts.push_back(s.size());
  for (const std::size_t to : cuts) {
    if (!v.feed(std::string_view(s).substr(from, to - from))) return false;
    from = to;
  }
  return v.finish();
}

const std::vector<std::string> kValid = {
    "",
    "plain ASCII, longer than one eight-byte word",
    std::string("\x00\x7F", 2),
    "\xC2\x80",                                      // U+0080, the first two-byte character
    "\xDF\xBF",                                      // U+07FF
    "\xE0\xA0\x80",                                  // U+0800, the first three-byte character
    "\xED\x9F\xBF",                                  // U+D7FF, just below the surrogates
    "\xEE\x80\x80",                                  // U+E000, just above them
    "\xEF\xBF\xBF",                                  // U+FFFF
    "\xF0\x90\x80\x80",                              // U+10000, the first four-byte character
    "\xF4\x8F\xBF\xBF",                              // U+10FFFF, the last code point
    "\xCE\xBA\xE1\xBD\xB9\xCF\x83\xCE\xBC\xCE\xB5",  // "kosme" in Greek
    "1234567\xE2\x82\xAC"
    "89abcdef\xF0\x9F\x98\x80xyz",  // characters across word boundaries
    "{\"topic\":\"md.quotes\",\"data\":{\"px\":\"\xE2\x82\xAC"
    "1\"}}",
};

struct Invalid {
  std::string bytes;
  const char* what;
};
const std::vector<Invalid> kInvalid = {
    {"\x80", "a continuation byte with no lead"},
    {"abcdefghijk\xBF", "a stray continuation byte after a run of ASCII"},
    {"\xC0\x80", "overlong NUL (C0)"},
    {"\xC1\xBF", "overlong two-byte form (C1)"},
    {"\xE0\x80\x80", "overlong three-byte NUL"},
    {"\xE0\x9F\xBF", "overlong U+07FF in three bytes"},
    {"\xF0\x80\x80\x80", "overlong four-byte NUL"},
    {"\xF0\x8F\xBF\xBF", "overlong U+FFFF in four bytes"},
    {"\xED\xA0\x80", "surrogate U+D800"},
    {"\xED\xBF\xBF", "surrogate U+DFFF"},
    {"\xED\xA0\xBD\xED\xB8\x80", "a surrogate pair (CESU-8)"},
    {"\xF4\x90\x80\x80", "U+110000, above the last code point"},
    {"\xF5\x80\x80\x80", "lead F5"},
    {"\xF8\x88\x80\x80\x80", "a five-byte form"},
    {"\xFE", "FE"},
    {"\xFF", "FF"},
    {"\xC2", "two-byte sequence cut short"},
    {"\xE0\xA0", "three-byte sequence cut short"},
    {"\xF0\x90\x80", "four-byte sequence cut short"},
    {"ok\xE2\x82", "cut short at the end of a longer text"},
    {"\xC2\x41", "a lead followed by ASCII"},
    {"\xE1\x80\xC0", "a lead inside a sequence"},
    {"\xF1\x80\x80\xE0\xA0\x80", "four-byte lead with three bytes, then a whole character"},
};

TEST(Utf8, TableOfValidAndInvalidSequences) {
  for (const auto& s : kValid) {
    EXPECT_TRUE(is_valid_utf8(s)) << testing::PrintToString(s);
    EXPECT_TRUE(reference_valid(s)) << testing::PrintToString(s);
  }
  for (const auto& [bytes, what] : kInvalid) {
    EXPECT_FALSE(is_valid_utf8(bytes)) << what;
    EXPECT_FALSE(reference_valid(bytes)) << what << " (the reference disagrees)";
  }
}

// WebSocket fragments may cut a text anywhere, even inside a character.
TEST(Utf8, EverySplitIntoTwoOrThreePiecesGivesTheSameAnswer) {
  auto check = [](const std::string& s, bool valid, const char* what) {
    for (std::size_t a = 0; a <= s.size(); ++a) {
      EXPECT_EQ(valid_in_pieces(s, {a}), valid) << what << " cut at " << a;
      for (std::size_t b = a; b <= s.size(); ++b) {
        EXPECT_EQ(valid_in_pieces(s, {a, b}), valid) << what << " cut at " << a << ", " << b;
      }
    }
  };
  for (const auto& s : kValid) check(s, true, "valid");
  for (const auto& [bytes, what] : kInvalid) check(bytes, false, what);
}

TEST(Utf8, CutShortIsOnlyKnownAtTheEnd) {
  Utf8Validator v;
  EXPECT_TRUE(v.feed("\xE2\x82"));  // could still become U+20AC
  EXPECT_FALSE(v.finish());
  EXPECT_TRUE(v.feed("\xAC"));
  EXPECT_TRUE(v.finish());
  EXPECT_FALSE(v.feed("\xFF"));
  EXPECT_TRUE(v.failed());
  EXPECT_FALSE(v.feed("fine now"));  // sticky until reset
  v.reset();
  EXPECT_TRUE(v.feed("fine now") && v.finish());
}

// Exhaustive up to three bytes (16.8 M strings), each string also preceded by ASCII so that
// the word-at-a-time path hands over to the byte path at every offset.
TEST(Utf8, AgreesWithTheReferenceOnEveryStringUpToThreeBytes) {
  std::string s;
  std::size_t mismatches = 0;
  for (std::uint32_t n = 0; n < (1U << 24); ++n) {
    s.assign({static_cast<char>(n >> 16), static_cast<char>(n >> 8), static_cast<char>(n)});
    if (is_valid_utf8(s) != reference_valid(s) && ++mismatches < 10) {
      ADD_FAILURE() << testing::PrintToString(s);
    }
  }
  for (std::uint32_t n = 0; n < (1U << 16); ++n) {
    for (const std::size_t prefix : {std::size_t{1}, std::size_t{7}, std::size_t{8}}) {
      s.assign(prefix, 'a');
      s += static_cast<char>(n >> 8);
      s += static_cast<char>(n);
      if (is_valid_utf8(s) != reference_valid(s) && ++mismatches < 10) {
        ADD_FAILURE() << testing::PrintToString(s);
      }
    }
  }
  EXPECT_EQ(mismatches, 0u);
}

TEST(Utf8, AgreesWithTheReferenceOnRandomFourToTwelveByteStrings) {
  std::mt19937_64 rng(14);
  std::string s;
  std::size_t mismatches = 0;
  std::size_t valid = 0;
  for (int i = 0; i < 2'000'000; ++i) {
    const std::size_t len = 4 + rng() % 9;
    s.clear();
    for (std::size_t k = 0; k < len; ++k) {
      // Biased toward the interesting bytes: leads and continuations, few ASCII.
      const std::uint64_t r = rng();
      s += static_cast<char>(r % 4 == 0 ? static_cast<std::uint8_t>(r >> 8)
                                        : static_cast<std::uint8_t>(0x80 + (r >> 8) % 0x78));
    }
    const bool ref = reference_valid(s);
    valid += ref ? 1 : 0;
    if (is_valid_utf8(s) != ref && ++mismatches < 10) ADD_FAILURE() << testing::PrintToString(s);
  }
  EXPECT_EQ(mismatches, 0u);
  EXPECT_GT(valid, 1000u);  // the sample holds valid multi-byte strings too
}

}  // namespace
}  // namespace shmbus::bridge::net
