// Self-checking messages for the kill loops (tests/fault/kill_loop.cpp) and the
// soak (tools/soak/bus-soak): the payload format and the stream verifier,
// written once and used by both.
//
// A payload carries who wrote it and where it belongs:
//
//   0        8        16       24       32       40              size
//   +--------+--------+--------+--------+--------+---------------+
//   | gen    | index  | seq    | size   | check  | filler ...    |
//   +--------+--------+--------+--------+--------+---------------+
//
//   gen    the producer's generation (1, 2, ...: each restarted or taking
//          over producer is the next one)
//   index  its own count of messages before this one (0 for its first)
//   seq    the bus sequence the producer claimed for it
//   size   the payload's length, derived from (gen, index)
//   check  FNV-1a over every other byte; the filler is derived from (gen, index)
//
// A torn or stale read breaks the checksum or the size; a message delivered
// in the wrong place breaks `seq`; a sequence skipped or reused by a producer
// breaks the index arithmetic below.
//
// The verifier reads one subscriber's stream (messages and gaps, in delivery
// order) and counts what is wrong: a torn payload, a duplicate (a sequence
// seen before), a hole no gap reported (lost), a payload whose `seq` is not
// the delivered one, a generation going back, an index not advancing with
// the sequence, and a new generation that does not start right where the old
// one stopped ("goes on from the last committed sequence", README
// "Guarantees"). On a reliable topic a gap is an error too.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <map>
#include <span>
#include <sstream>
#include <string>

namespace shmbus::soak {

inline constexpr std::size_t kStampBytes = 40;
// Correlation id of the last message of a run: the consumer stops there.
inline constexpr std::uint64_t kEndMarker = 0x5EA1E0F;

namespace detail {
inline std::uint64_t mix(std::uint64_t x) noexcept {  // splitmix64's finaliser
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}
inline std::uint64_t fnv(std::span<const std::byte> a, std::span<const std::byte> b) noexcept {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  for (const std::byte x : a) h = (h ^ std::to_integer<std::uint64_t>(x)) * 0x100000001b3ULL;
  for (const std::byte x : b) h = (h ^ std::to_integer<std::uint64_t>(x)) * 0x100000001b3ULL;
  return h;
}
inline std::uint64_t load(const std::byte* p) noexcept {
  std::uint64_t v = 0;
  std::memcpy(&v, p, 8);
  return v;
}
inline void store(std::byte* p, std::uint64_t v) noexcept {
  std::memcpy(p, &v, 8);
}
}  // namespace detail

// The payload size of message (gen, index) on a topic carrying up to
// `max_payload` bytes: varies between kStampBytes and max_payload.
[[nodiscard]] inline std::size_t stamp_size(std::uint64_t gen, std::uint64_t index,
                                            std::size_t max_payload) noexcept {
  if (max_payload <= kStampBytes) return kStampBytes;
  return kStampBytes + detail::mix(gen * 1'000'003 + index) % (max_payload - kStampBytes + 1);
}

// Writes message (gen, index, seq) at `p`, which has room for `size` bytes
// (stamp_size()). Returns `size`.
inline std::size_t stamp(std::byte* p, std::size_t size, std::uint64_t gen, std::uint64_t index,
                         std::uint64_t seq) noexcept {
  detail::store(p, gen);
  detail::store(p + 8, index);
  detail::store(p + 16, seq);
  detail::store(p + 24, size);
  const std::uint64_t f = detail::mix(gen ^ (index << 20));
  for (std::size_t i = kStampBytes; i < size; ++i)
    p[i] = static_cast<std::byte>((f >> ((i % 8) * 8)) ^ i);
  detail::store(p + 32, detail::fnv({p, 32}, {p + kStampBytes, size - kStampBytes}));
  return size;
}

struct Stamp {
  std::uint64_t gen = 0;
  std::uint64_t index = 0;
  std::uint64_t seq = 0;
};

// Reads a stamp; false if the payload is torn (size or checksum wrong).
[[nodiscard]] inline bool read_stamp(std::span<const std::byte> d, Stamp& s,
                                     std::size_t max_payload) noexcept {
  if (d.size() < kStampBytes) return false;
  s.gen = detail::load(d.data());
  s.index = detail::load(d.data() + 8);
  s.seq = detail::load(d.data() + 16);
  if (detail::load(d.data() + 24) != d.size()) return false;
  if (d.size() != stamp_size(s.gen, s.index, max_payload)) return false;
  return detail::load(d.data() + 32) ==
         detail::fnv(d.first(32), d.subspan(kStampBytes, d.size() - kStampBytes));
}

struct StreamCounts {
  std::uint64_t delivered = 0;
  std::uint64_t gaps = 0;      // gap reports
  std::uint64_t gap_msgs = 0;  // sequences they covered (dropped, reported)
  std::uint64_t torn = 0;
  std::uint64_t dup = 0;        // a sequence delivered (or reported lost) before
  std::uint64_t lost = 0;       // sequences neither delivered nor reported in a gap
  std::uint64_t misplaced = 0;  // payload written for another sequence
  std::uint64_t gen_back = 0;   // a generation older than one already seen
  std::uint64_t index_jump = 0;
  std::uint64_t bad_handover = 0;  // a new generation not starting where the last stopped
  std::uint64_t reliable_gap = 0;  // gaps on a reliable topic (each is an error there)
};

class StreamVerifier {
 public:
  // `first` is the first sequence the subscriber is due (1 for a topic it
  // saw created).
  StreamVerifier(std::size_t max_payload, bool reliable, std::uint64_t first = 1)
      : max_payload_(max_payload), reliable_(reliable), expected_(first) {}

  void on_gap(std::uint64_t first, std::uint64_t count) {
    ++c_.gaps;
    c_.gap_msgs += count;
    if (reliable_) note(++c_.reliable_gap, "gap on a reliable topic", first);
    if (first < expected_) {
      note(++c_.dup, "gap reported over sequences already seen", first);
    } else if (first > expected_) {
      c_.lost += first - expected_;
      note(c_.lost, "hole before a gap", expected_);
    }
    if (first + count > expected_) expected_ = first + count;
    gap_before_next_ = true;
  }

  void on_message(std::uint64_t seq, std::span<const std::byte> data) {
    ++c_.delivered;
    if (seq < expected_) {
      ++c_.dup;
      note(c_.dup, "duplicate (or reordered) sequence", seq);
      return;
    }
    const bool contiguous = seq == expected_ && !gap_before_next_;
    if (seq > expected_) {
      c_.lost += seq - expected_;
      note(c_.lost, "sequences missing without a gap report, before", seq);
    }
    expected_ = seq + 1;
    gap_before_next_ = false;
    Stamp s;
    if (!read_stamp(data, s, max_payload_)) {
      ++c_.torn;
      note(c_.torn, "torn payload", seq);
      have_last_ = false;
      return;
    }
    if (s.seq != seq) note(++c_.misplaced, "payload written for another sequence", seq);
    ++per_gen_[s.gen];
    if (have_last_) {
      if (s.gen < last_.gen) {
        note(++c_.gen_back, "generation went back", seq);
      } else if (s.gen == last_.gen) {
        if (s.index - last_.index != s.seq - last_.seq)
          note(++c_.index_jump, "index does not advance with the sequence", seq);
      } else if (contiguous && s.index != 0) {
        note(++c_.bad_handover, "new producer did not start after the last committed message", seq);
      }
    }
    last_ = s;
    have_last_ = true;
  }

  [[nodiscard]] const StreamCounts& counts() const noexcept { return c_; }
  // The sequence due next: everything before it was delivered or reported.
  [[nodiscard]] std::uint64_t expected() const noexcept { return expected_; }
  // Messages delivered per producer generation.
  [[nodiscard]] const std::map<std::uint64_t, std::uint64_t>& per_generation() const noexcept {
    return per_gen_;
  }
  // No torn, duplicate, lost, misplaced or out-of-order message (and no gap
  // on a reliable topic).
  [[nodiscard]] bool clean() const noexcept {
    return c_.torn + c_.dup + c_.lost + c_.misplaced + c_.gen_back + c_.index_jump +
               c_.bad_handover + c_.reliable_gap ==
           0;
  }
  // The first problem seen, "" if none.
  [[nodiscard]] const std::string& first_error() const noexcept { return first_error_; }

  // "delivered=N gaps=G gap_msgs=M torn=0 dup=0 lost=0 ..."
  [[nodiscard]] std::string summary() const {
    std::ostringstream o;
    o << "delivered=" << c_.delivered << " gaps=" << c_.gaps << " gap_msgs=" << c_.gap_msgs
      << " torn=" << c_.torn << " dup=" << c_.dup << " lost=" << c_.lost
      << " misplaced=" << c_.misplaced << " gen_back=" << c_.gen_back
      << " index_jump=" << c_.index_jump << " bad_handover=" << c_.bad_handover
      << " reliable_gap=" << c_.reliable_gap;
    return o.str();
  }

 private:
  void note(std::uint64_t count, const char* what, std::uint64_t seq) {
    if (count > 0 && first_error_.empty())
      first_error_ = std::string(what) + " at sequence " + std::to_string(seq);
  }

  std::size_t max_payload_;
  bool reliable_;
  std::uint64_t expected_;
  bool gap_before_next_ = false;
  bool have_last_ = false;
  Stamp last_;
  StreamCounts c_;
  std::map<std::uint64_t, std::uint64_t> per_gen_;
  std::string first_error_;
};

}  // namespace shmbus::soak
