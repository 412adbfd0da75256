// The ring algorithm on plain heap memory: no segment, no bus, no topic. A
// RingBlock described by hand is all RingWriter and RingReader need, so the
// states below (a torn slot, a lapped reader, a gating consumer, a dead
// producer's leftovers) are built and checked without shared memory.
#include <unistd.h>

#include <cstring>
#include <new>
#include <vector>

#include <gtest/gtest.h>

#include "shmbus/core/publisher.hpp"
#include "shmbus/core/topic.hpp"
#include "shmbus/detail/layout.hpp"
#include "shmbus/detail/process.hpp"
#include "shmbus/detail/ring.hpp"

namespace shmbus::detail {
namespace {

// Heap memory laid out as a topic segment's header, consumer table and slots.
class HeapRing {
 public:
  HeapRing(std::uint32_t slot_size, std::uint32_t slot_count, bool reliable,
           std::uint32_t consumers = 4) {
    const TopicGeometry g = topic_geometry(consumers, 0, slot_size, slot_count);
    bytes_ = g.segment_bytes;
    mem_ = static_cast<std::byte*>(::operator new (bytes_, std::align_val_t{kPageSize}));
    std::memset(mem_, 0, bytes_);
    auto* h = new (mem_) TopicHeader();
    for (std::uint32_t i = 0; i < consumers; ++i)
      new (mem_ + g.consumers_offset + i * sizeof(ConsumerEntry)) ConsumerEntry();
    for (std::uint32_t i = 0; i < slot_count; ++i)
      new (mem_ + g.slots_offset + std::uint64_t{i} * slot_size) SlotHeader();
    block_.header = h;
    block_.consumers = std::launder(reinterpret_cast<ConsumerEntry*>(mem_ + g.consumers_offset));
    block_.slots = mem_ + g.slots_offset;
    block_.max_consumers = consumers;
    block_.slot_size = slot_size;
    block_.slot_count = slot_count;
    block_.reliable = reliable;
  }
  ~HeapRing() { ::operator delete (mem_, std::align_val_t{kPageSize}); }
  HeapRing(const HeapRing&) = delete;
  HeapRing& operator=(const HeapRing&) = delete;

  [[nodiscard]] const RingBlock& block() const noexcept { return block_; }

  // Registers consumer entry `i` as this (live) process, cursor at `cursor`.
  ConsumerEntry& register_consumer(std::uint32_t i, std::uint64_t cursor) {
    ConsumerEntry& e = block_.consumers[i];
    e.cursor.store(cursor);
    e.state.store(make_claim(ClaimState::Active, self_identity()));
    auto& hwm = block_.header->registry.consumer_hwm;
    if (hwm.load() < i + 1) hwm.store(i + 1);
    return e;
  }

 private:
  std::byte* mem_ = nullptr;
  std::uint64_t bytes_ = 0;
  RingBlock block_;
};

PublishResult write(RingWriter& w, std::uint64_t value, std::size_t size = 8) {
  PublishResult r{};
  SlotHeader* s = w.claim(size, r);
  if (s == nullptr) return r;
  std::memcpy(RingView::payload(s), &value, sizeof value);
  w.commit(s, size, /*raw_ts=*/value * 10, /*correlation=*/0);
  return PublishResult::Ok;
}

struct Seen {
  std::vector<std::uint64_t> seqs;
  std::vector<std::uint64_t> values;
};

ReadStatus read_one(RingReader& r, Seen& seen) {
  return r.read([&](const SlotRead& m) {
    std::uint64_t v = 0;
    std::memcpy(&v, m.data.data(), sizeof v);
    seen.seqs.push_back(m.seq);
    seen.values.push_back(v);
    EXPECT_EQ(m.raw_ts, v * 10);
    EXPECT_EQ(m.data.size(), 8u);
  });
}

TEST(RingBlock, WriterAndReaderOnHeapMemoryDeliverInOrder) {
  HeapRing mem(64, 8, /*reliable=*/false);
  RingWriter w(mem.block(), RingWriter::recover_next(mem.block()));
  RingReader r(mem.block(), nullptr, 1, ~std::uint64_t{0});
  Seen seen;
  EXPECT_EQ(read_one(r, seen), ReadStatus::Empty);
  for (std::uint64_t v = 100; v < 105; ++v) ASSERT_EQ(write(w, v), PublishResult::Ok);
  while (read_one(r, seen) == ReadStatus::Delivered) {
  }
  EXPECT_EQ(seen.seqs, (std::vector<std::uint64_t>{1, 2, 3, 4, 5}));
  EXPECT_EQ(seen.values, (std::vector<std::uint64_t>{100, 101, 102, 103, 104}));
  // head is stored once a head_period() (4 on 8 slots); the newest is found from it.
  EXPECT_EQ(mem.block().header->hot.head.load(), 4u);
  EXPECT_EQ(newest_committed(RingView(mem.block()), mem.block().header->hot.head.load()), 5u);
  w.store_head();
  EXPECT_EQ(mem.block().header->hot.head.load(), 5u);
}

TEST(RingBlock, HeadIsStoredOnceAPeriodAndTheNewestIsFoundPastIt) {
  EXPECT_EQ(head_period(2), 1u);
  EXPECT_EQ(head_period(8), 4u);
  EXPECT_EQ(head_period(64), 32u);
  EXPECT_EQ(head_period(128), 64u);
  EXPECT_EQ(head_period(1u << 20), 64u);
  HeapRing mem(64, 256, false);
  RingWriter w(mem.block(), 1);
  const RingView view(mem.block());
  auto& head = mem.block().header->hot.head;
  for (std::uint64_t v = 1; v <= 100; ++v) {
    ASSERT_EQ(write(w, v), PublishResult::Ok);
    ASSERT_EQ(head.load(), v / 64 * 64) << "after message " << v;
    ASSERT_EQ(newest_committed(view, head.load()), v) << "after message " << v;
  }
  // A claimed (odd) slot ends the scan: message 101 is not committed.
  PublishResult r{};
  SlotHeader* s = w.claim(8, r);
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(newest_committed(view, head.load()), 100u);
  w.abort(s);
  // A producer that dies here leaves head at 64; its successor goes on at
  // 101, and stores the exact head.
  RingWriter next(mem.block(), RingWriter::recover_next(mem.block()));
  EXPECT_EQ(next.next(), 101u);
  EXPECT_EQ(head.load(), 100u);
  // A hint older than the ring (a lap behind) does not scan into a newer lap.
  HeapRing small(64, 8, false);
  RingWriter ws(small.block(), 1);
  for (std::uint64_t v = 1; v <= 20; ++v) ASSERT_EQ(write(ws, v), PublishResult::Ok);
  EXPECT_EQ(newest_committed(RingView(small.block()), 20), 20u);
  EXPECT_EQ(newest_committed(RingView(small.block()), 16), 20u);
  EXPECT_EQ(newest_committed(RingView(small.block()), 3), 3u)
      << "slot 4 holds message 20, not 4: the scan stops";
}

TEST(RingBlock, AClaimedButUncommittedSlotIsNotDelivered) {
  HeapRing mem(64, 8, false);
  RingWriter w(mem.block(), 1);
  RingReader r(mem.block(), nullptr, 1, ~std::uint64_t{0});
  PublishResult res{};
  SlotHeader* s = w.claim(8, res);
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->seq.load(), 3u) << "claimed message 1 is odd: 2*1+1";
  Seen seen;
  EXPECT_EQ(read_one(r, seen), ReadStatus::Empty);
  EXPECT_FALSE(r.ready());
  w.commit(s, 8, 0, 0);
  EXPECT_TRUE(r.ready());
}

TEST(RingBlock, ALappedReaderSkipsToTheNewestAndCountsExactlyWhatItLost) {
  HeapRing mem(64, 4, false);
  RingWriter w(mem.block(), 1);
  RingReader r(mem.block(), nullptr, 1, ~std::uint64_t{0});
  for (std::uint64_t v = 1; v <= 10; ++v) ASSERT_EQ(write(w, v), PublishResult::Ok);
  Seen seen;
  // Message 1's slot holds message 9: the reader was lapped.
  EXPECT_EQ(read_one(r, seen), ReadStatus::Lapped);
  EXPECT_EQ(r.gap_first(), 1u);
  EXPECT_EQ(r.gap_count(), 9u) << "resumes at the head (10), so 1..9 are lost";
  EXPECT_EQ(r.drops(), 9u);
  EXPECT_EQ(read_one(r, seen), ReadStatus::Delivered);
  EXPECT_EQ(seen.seqs, (std::vector<std::uint64_t>{10}));
}

TEST(RingBlock, AReliableWriterStopsAtTheSlowestLiveConsumer) {
  HeapRing mem(64, 4, /*reliable=*/true);
  ConsumerEntry& e = mem.register_consumer(0, 0);
  RingWriter w(mem.block(), 1);
  for (std::uint64_t v = 1; v <= 4; ++v) ASSERT_EQ(write(w, v), PublishResult::Ok);
  EXPECT_EQ(write(w, 5), PublishResult::WouldBlock) << "slot of message 1 not yet read";
  e.cursor.store(1, std::memory_order_release);
  EXPECT_EQ(write(w, 5), PublishResult::Ok);
  EXPECT_EQ(write(w, 6), PublishResult::WouldBlock);
}

TEST(RingBlock, AReliableReaderWithAnEntryReadsInPlaceAndPublishesItsCursor) {
  HeapRing mem(64, 4, true);
  ConsumerEntry& e = mem.register_consumer(0, 0);
  RingWriter w(mem.block(), 1);
  RingReader r(mem.block(), &e, 1, /*in_place_from=*/1);
  ASSERT_EQ(write(w, 7), PublishResult::Ok);
  const std::byte* where = nullptr;
  ASSERT_EQ(r.read([&](const SlotRead& m) { where = m.data.data(); }), ReadStatus::Delivered);
  EXPECT_EQ(where, RingView::payload(RingView(mem.block()).slot(1))) << "in place: no copy";
  r.flush();
  EXPECT_EQ(e.cursor.load(), 1u);
}

TEST(RingBlock, RecoveryGoesOnAfterTheLastCommittedMessageOfADeadWriter) {
  HeapRing mem(64, 8, false);
  {
    RingWriter dead(mem.block(), 1);
    for (std::uint64_t v = 1; v <= 3; ++v) ASSERT_EQ(write(dead, v), PublishResult::Ok);
    // A fourth message committed but head not stored (died in between)...
    PublishResult res{};
    SlotHeader* s = dead.claim(8, res);
    ASSERT_NE(s, nullptr);
    dead.commit(s, 8, 0, 0);
    mem.block().header->hot.head.store(3);
    // ...and a fifth claimed, never committed.
    ASSERT_NE(dead.claim(8, res), nullptr);
  }
  EXPECT_EQ(RingWriter::recover_next(mem.block()), 5u);
  EXPECT_EQ(mem.block().header->hot.head.load(), 4u);
}

TEST(RingBlock, TheCommitClaimsTheNextSlotAheadAndTheRingHoldsNMinusOne) {
  HeapRing mem(128, 4, /*reliable=*/false);
  RingWriter w(mem.block(), 1);
  ASSERT_EQ(write(w, 1), PublishResult::Ok);
  const RingView view(mem.block());
  EXPECT_EQ(view.slot(2)->seq.load(), 2u * 2 + 1) << "message 2 claimed by the commit of 1";
  RingReader at2(mem.block(), nullptr, 2, ~std::uint64_t{0});
  Seen seen;
  EXPECT_EQ(read_one(at2, seen), ReadStatus::Empty) << "claimed ahead is not ready";
  EXPECT_FALSE(at2.ready());
  for (std::uint64_t v = 2; v <= 6; ++v) ASSERT_EQ(write(w, v), PublishResult::Ok);
  // Slot 7 & 3 (message 3's) is claimed for 7: held are 4, 5, 6 = N-1.
  EXPECT_EQ(oldest_held(6, 4), 4u);
  EXPECT_EQ(oldest_held(2, 4), 1u) << "nothing overwritten yet";
  EXPECT_EQ(oldest_held(3, 4), 1u) << "slot of 4 was empty, message 1 intact";
  EXPECT_EQ(oldest_held(4, 4), 2u);
  RingReader at3(mem.block(), nullptr, 3, ~std::uint64_t{0});
  EXPECT_EQ(read_one(at3, seen), ReadStatus::Lapped);
  EXPECT_EQ(at3.gap_count(), 3u) << "3 is gone, and 4, 5 are skipped for the newest";
  RingReader oldest(mem.block(), nullptr, oldest_held(6, 4), ~std::uint64_t{0});
  seen = {};
  while (read_one(oldest, seen) == ReadStatus::Delivered) {
  }
  EXPECT_EQ(seen.seqs, (std::vector<std::uint64_t>{4, 5, 6}));
  EXPECT_EQ(oldest.drops(), 0u);
}

TEST(RingBlock, ALappedReaderFindingAClaimedSlotResumesAtTheNewestCommitted) {
  HeapRing mem(64, 4, false);
  RingWriter w(mem.block(), 1);
  RingReader r(mem.block(), nullptr, 2, ~std::uint64_t{0});
  for (std::uint64_t v = 1; v <= 5; ++v) ASSERT_EQ(write(w, v), PublishResult::Ok);
  // Message 2's slot is claimed ahead for 6 (odd 13): 6 is not committed,
  // 5 is. Skipping to 6 would lose the newest message as well.
  Seen seen;
  EXPECT_EQ(read_one(r, seen), ReadStatus::Lapped);
  EXPECT_EQ(r.gap_first(), 2u);
  EXPECT_EQ(r.gap_count(), 3u) << "2, 3, 4 lost; resumes at 5";
  EXPECT_EQ(read_one(r, seen), ReadStatus::Delivered);
  EXPECT_EQ(seen.seqs, (std::vector<std::uint64_t>{5}));
}

TEST(RingBlock, AReliableWriterClaimsAheadOnlyWhereGatingAllowsIt) {
  HeapRing mem(64, 4, /*reliable=*/true);
  ConsumerEntry& e = mem.register_consumer(0, 0);
  RingWriter w(mem.block(), 1);
  for (std::uint64_t v = 1; v <= 4; ++v) ASSERT_EQ(write(w, v), PublishResult::Ok);
  const RingView view(mem.block());
  EXPECT_EQ(view.slot(5)->seq.load(), 2u * 1) << "message 1 not read: its slot untouched";
  RingReader r(mem.block(), &e, 1, 1);
  Seen seen;
  ASSERT_EQ(read_one(r, seen), ReadStatus::Delivered) << "the consumer still reads 1 whole";
  r.flush();
  ASSERT_EQ(write(w, 5), PublishResult::Ok);
  EXPECT_EQ(view.slot(6)->seq.load(), 2u * 2) << "message 2 not read: 6 not claimed ahead";
}

TEST(RingBlock, ASuccessorWriterReusesTheSequenceClaimedAheadWithoutAGap) {
  HeapRing mem(64, 8, false);
  RingReader r(mem.block(), nullptr, 1, ~std::uint64_t{0});
  {
    RingWriter w(mem.block(), RingWriter::recover_next(mem.block()));
    for (std::uint64_t v = 1; v <= 3; ++v) ASSERT_EQ(write(w, v), PublishResult::Ok);
  }  // stops with message 4 claimed ahead, as every producer that stops does
  const RingView view(mem.block());
  EXPECT_EQ(view.slot(4)->seq.load(), 2u * 4 + 1);
  RingWriter next(mem.block(), RingWriter::recover_next(mem.block()));
  EXPECT_EQ(next.next(), 4u);
  ASSERT_EQ(write(next, 4), PublishResult::Ok);
  Seen seen;
  while (read_one(r, seen) == ReadStatus::Delivered) {
  }
  EXPECT_EQ(seen.seqs, (std::vector<std::uint64_t>{1, 2, 3, 4}));
  EXPECT_EQ(r.drops(), 0u);
}

TEST(RingBlock, OnlyACommitAfterAnIdleSpellClaimsAhead) {
  HeapRing mem(64, 8, false);
  RingWriter w(mem.block(), 1);
  w.set_ahead_idle(100);  // write() stamps message v at raw 10 * v
  const RingView view(mem.block());
  ASSERT_EQ(write(w, 50), PublishResult::Ok);
  EXPECT_EQ(view.slot(2)->seq.load(), 2u * 2 + 1) << "500 units after nothing: claimed ahead";
  ASSERT_EQ(write(w, 51), PublishResult::Ok);
  EXPECT_EQ(view.slot(3)->seq.load(), 0u) << "10 units after the last: streaming, no claim";
  ASSERT_EQ(write(w, 70), PublishResult::Ok);
  EXPECT_EQ(view.slot(4)->seq.load(), 2u * 4 + 1) << "190 units idle: claimed ahead";
  RingReader r(mem.block(), nullptr, 1, ~std::uint64_t{0});
  Seen seen;
  while (read_one(r, seen) == ReadStatus::Delivered) {
  }
  EXPECT_EQ(seen.values, (std::vector<std::uint64_t>{50, 51, 70}));
}

// Batches (RingWriter::publish_batch): message i of a batch is written by
// fill(i, payload) and committed before i + 1 is claimed; one stamp for all.
struct BatchFill {
  std::uint64_t first = 0;  // value of message 0; message i carries first + i
  std::size_t calls = 0;
  std::size_t operator()(std::size_t i, std::byte* payload) noexcept {
    ++calls;
    const std::uint64_t v = first + i;
    std::memcpy(payload, &v, sizeof v);
    return 8 + (i % 3) * 8;  // 8, 16, 24, 8, ...: each message its own size
  }
};

struct SeenFull {
  std::vector<std::uint64_t> seqs, values, stamps, correlations;
  std::vector<std::size_t> sizes;
};

void read_all(RingReader& r, SeenFull& seen) {
  while (r.read([&](const SlotRead& m) {
    std::uint64_t v = 0;
    std::memcpy(&v, m.data.data(), sizeof v);
    seen.seqs.push_back(m.seq);
    seen.values.push_back(v);
    seen.stamps.push_back(m.raw_ts);
    seen.correlations.push_back(m.correlation);
    seen.sizes.push_back(m.data.size());
  }) == ReadStatus::Delivered) {
  }
}

TEST(RingBlock, ABatchIsDeliveredInOrderWithOneStampAndEachMessageItsOwnSize) {
  HeapRing mem(64, 16, false);
  RingWriter w(mem.block(), 1);
  const RingView view(mem.block());
  BatchFill fill{100};
  EXPECT_EQ(w.publish_batch(0, fill, 1, 0), 0u);
  EXPECT_EQ(fill.calls, 0u);
  ASSERT_EQ(w.publish_batch(10, fill, /*raw_ts=*/777, /*correlation=*/5), 10u);
  EXPECT_EQ(fill.calls, 10u);
  EXPECT_EQ(w.next(), 11u);
  // head once a head_period() (8 on 16 slots); the newest is found past it.
  EXPECT_EQ(mem.block().header->hot.head.load(), 8u);
  EXPECT_EQ(newest_committed(mem.block(), std::memory_order_acquire), 10u);
  EXPECT_EQ(view.slot(11)->seq.load(), 0u) << "no claim ahead after a batch of several";
  RingReader r(mem.block(), nullptr, 1, ~std::uint64_t{0});
  SeenFull seen;
  read_all(r, seen);
  EXPECT_EQ(seen.seqs, (std::vector<std::uint64_t>{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}));
  EXPECT_EQ(seen.values,
            (std::vector<std::uint64_t>{100, 101, 102, 103, 104, 105, 106, 107, 108, 109}));
  EXPECT_EQ(seen.sizes, (std::vector<std::size_t>{8, 16, 24, 8, 16, 24, 8, 16, 24, 8}));
  EXPECT_EQ(seen.stamps, std::vector<std::uint64_t>(10, 777));
  EXPECT_EQ(seen.correlations, std::vector<std::uint64_t>(10, 5));
  // A batch that wraps the ring (16 slots) goes on in order.
  fill.first = 200;
  ASSERT_EQ(w.publish_batch(12, fill, 900, 0), 12u);
  SeenFull more;
  read_all(r, more);
  ASSERT_EQ(more.seqs.size(), 12u);
  EXPECT_EQ(more.seqs.front(), 11u);
  EXPECT_EQ(more.seqs.back(), 22u);
  EXPECT_EQ(more.values.back(), 211u);
}

TEST(RingBlock, ABatchTakesTheSlotClaimedAheadAndAOneMessageBatchClaimsAheadAsACommit) {
  HeapRing mem(64, 8, false);
  RingWriter w(mem.block(), 1);  // ahead_idle 0: every commit claims ahead
  const RingView view(mem.block());
  ASSERT_EQ(write(w, 1), PublishResult::Ok);
  ASSERT_EQ(view.slot(2)->seq.load(), 2u * 2 + 1) << "claimed ahead by the commit";
  BatchFill fill{2};
  ASSERT_EQ(w.publish_batch(3, fill, 30, 0), 3u);
  EXPECT_EQ(view.slot(5)->seq.load(), 0u) << "a batch of three ends streaming: nothing ahead";
  fill.first = 5;
  ASSERT_EQ(w.publish_batch(1, fill, 60, 0), 1u);
  EXPECT_EQ(view.slot(6)->seq.load(), 2u * 6 + 1) << "one message after an idle spell: ahead";
  ASSERT_EQ(write(w, 6), PublishResult::Ok);
  RingReader r(mem.block(), nullptr, 1, ~std::uint64_t{0});
  SeenFull seen;
  read_all(r, seen);
  EXPECT_EQ(seen.seqs, (std::vector<std::uint64_t>{1, 2, 3, 4, 5, 6}));
  EXPECT_EQ(seen.values, (std::vector<std::uint64_t>{1, 2, 3, 4, 5, 6}));
}

TEST(RingBlock, AReliableBatchStopsAtTheSlowestConsumerAndGoesOnWhereItStopped) {
  HeapRing mem(64, 8, /*reliable=*/true);
  ConsumerEntry& e = mem.register_consumer(0, 0);
  RingWriter w(mem.block(), 1);
  BatchFill fill{1};
  ASSERT_EQ(w.publish_batch(20, fill, 1, 0), 8u) << "a ring of 8, nothing read yet";
  EXPECT_EQ(fill.calls, 8u) << "no slot past the limit is even claimed";
  fill.first = 9;
  EXPECT_EQ(w.publish_batch(5, fill, 2, 0), 0u) << "full";
  EXPECT_EQ(fill.calls, 8u);
  RingReader r(mem.block(), &e, 1, /*in_place_from=*/1);
  SeenFull seen;
  for (int k = 0; k < 3; ++k)
    ASSERT_EQ(r.read([&](const SlotRead& m) { seen.seqs.push_back(m.seq); }),
              ReadStatus::Delivered);
  r.flush();
  ASSERT_EQ(e.cursor.load(), 3u);
  ASSERT_EQ(w.publish_batch(5, fill, 3, 0), 3u) << "three slots read: three more, no more";
  SeenFull rest;
  read_all(r, rest);
  EXPECT_EQ(rest.seqs, (std::vector<std::uint64_t>{4, 5, 6, 7, 8, 9, 10, 11}));
  EXPECT_EQ(rest.values, (std::vector<std::uint64_t>{4, 5, 6, 7, 8, 9, 10, 11}));
}

TEST(RingBlock, SlotSizeForCoversThePayloadAndTheHeaderInWholeLines) {
  EXPECT_EQ(slot_size_for(0), 64u);
  EXPECT_EQ(slot_size_for(32), 64u);
  EXPECT_EQ(slot_size_for(33), 128u);
  EXPECT_EQ(slot_size_for(144), 192u);
  EXPECT_EQ(slot_size_for(1024 - 32), 1024u);
  EXPECT_EQ(slot_size_for(1024), 1088u);
  for (std::uint32_t p : {1u, 100u, 480u, 4000u}) {
    TopicConfig c;
    c.slot_size = slot_size_for(p);
    EXPECT_GE(c.max_payload(), p);
    EXPECT_LT(c.max_payload(), p + 64);
  }
}

}  // namespace
}  // namespace shmbus::detail
