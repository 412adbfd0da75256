// Pins the shared-memory layout to kLayoutVersion.
//
// Processes built from different commits share these bytes. If any line here
// fails, the layout changed: bump detail::kLayoutVersion (so old and new
// builds refuse each other's segments with VersionMismatch instead of
// misreading them), then update the expected values and the version below.
#include <cstddef>
#include <string>
#include <type_traits>

#include <gtest/gtest.h>

#include "shmbus/detail/layout.hpp"
#include "shmbus/detail/process.hpp"

namespace shmbus::detail {
namespace {

#define PIN(type, field, off) \
  EXPECT_EQ(offsetof(type, field), std::size_t{off}) << #type "::" #field

TEST(Layout, VersionThatTheseValuesDescribe) {
  EXPECT_EQ(kLayoutVersion, 3u) << "update this file with the bump";
}

TEST(Layout, MagicNumbers) {
  EXPECT_EQ(kTopicMagic, 0x31504f5453424d53ULL);
  EXPECT_EQ(kDirectoryMagic, 0x3152494453424d53ULL);
  // Little-endian ASCII, so a hex dump of /dev/shm shows what the file is.
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(&kTopicMagic), 8), "SMBSTOP1");
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(&kDirectoryMagic), 8), "SMBSDIR1");
}

TEST(Layout, TopicHeader) {
  EXPECT_EQ(sizeof(TopicHeader), 1024u);
  PIN(TopicDescriptor, magic, 0);
  PIN(TopicDescriptor, layout_version, 8);
  PIN(TopicDescriptor, policy, 12);
  PIN(TopicDescriptor, segment_bytes, 16);
  PIN(TopicDescriptor, consumers_offset, 24);
  PIN(TopicDescriptor, schema_offset, 32);
  PIN(TopicDescriptor, slots_offset, 40);
  PIN(TopicDescriptor, schema_bytes, 48);
  PIN(TopicDescriptor, slot_size, 52);
  PIN(TopicDescriptor, slot_count, 56);
  PIN(TopicDescriptor, max_consumers, 60);
  PIN(TopicDescriptor, schema_hash, 64);
  PIN(TopicDescriptor, created_ns, 72);
  PIN(TopicDescriptor, creator, 80);
  PIN(TopicDescriptor, file_identifier, 88);
  PIN(TopicDescriptor, bus, 96);
  PIN(TopicDescriptor, topic, 136);
  PIN(TopicDescriptor, type_name, 208);
  PIN(TopicDescriptor, flags, 336);
  PIN(TopicDescriptor, evict_after_ns, 344);
  PIN(TopicHeader, producer, 384);
  PIN(TopicHeader, hot, 512);
  PIN(TopicHeader, wait, 640);
  PIN(TopicHeader, registry, 768);
  PIN(TopicHeader, supersede, 896);
  PIN(SupersedeBlock, claim, 0);
  PIN(ProducerControl, owner, 0);
  PIN(ProducerControl, attached_ns, 8);
  PIN(ProducerControl, takeovers, 16);
  PIN(ProducerControl, pid, 20);
  PIN(ProducerControl, name, 24);
  PIN(ProducerHot, head, 0);
  PIN(ProducerHot, too_large, 8);
  PIN(ProducerHot, would_block, 16);
  PIN(ProducerHot, reaped_consumers, 24);
  PIN(ProducerHot, evictions, 32);
  PIN(WaitBlock, futex, 0);
  PIN(WaitBlock, sleepers, 4);
  PIN(WaitBlock, arrivals, 8);
  PIN(RegistryBlock, directory_claim, 0);
  PIN(RegistryBlock, consumer_hwm, 8);
  PIN(RegistryBlock, joins, 16);
  PIN(RegistryBlock, leaves, 24);
}

TEST(Layout, ConsumerEntryAndSlotHeader) {
  EXPECT_EQ(sizeof(ConsumerEntry), 128u);
  EXPECT_EQ(alignof(ConsumerEntry), 128u);
  PIN(ConsumerEntry, state, 0);
  PIN(ConsumerEntry, cursor, 8);
  PIN(ConsumerEntry, drops, 16);
  PIN(ConsumerEntry, joined_seq, 24);
  PIN(ConsumerEntry, heartbeat_ns, 32);
  PIN(ConsumerEntry, delivered, 40);
  PIN(ConsumerEntry, pid, 48);
  PIN(ConsumerEntry, flags, 52);
  PIN(ConsumerEntry, name, 56);
  EXPECT_EQ(sizeof(SlotHeader), 32u);
  PIN(SlotHeader, seq, 0);
  PIN(SlotHeader, ts, 8);
  PIN(SlotHeader, correlation, 16);
  PIN(SlotHeader, size, 24);
  PIN(SlotHeader, producer, 28);
}

TEST(Layout, Directory) {
  EXPECT_EQ(sizeof(DirectoryHeader), 512u);
  EXPECT_EQ(sizeof(DirectoryEntry), 128u);
  PIN(DirectoryDescriptor, magic, 0);
  PIN(DirectoryDescriptor, layout_version, 8);
  PIN(DirectoryDescriptor, capacity, 12);
  PIN(DirectoryDescriptor, segment_bytes, 16);
  PIN(DirectoryDescriptor, entries_offset, 24);
  PIN(DirectoryDescriptor, created_ns, 32);
  PIN(DirectoryDescriptor, creator, 40);
  PIN(DirectoryDescriptor, bus, 48);
  PIN(DirectoryHeader, clock, 128);
  PIN(DirectoryHeader, doorbell, 256);
  PIN(ClockBlock, mode, 0);
  PIN(ClockBlock, base_tsc, 8);
  PIN(ClockBlock, base_ns, 16);
  PIN(ClockBlock, current, 24);
  PIN(ClockBlock, updater, 32);
  PIN(ClockBlock, anchors, 40);
  PIN(DirectoryEntry, state, 0);
  PIN(DirectoryEntry, registered_ns, 8);
  PIN(DirectoryEntry, name, 16);
}

TEST(Layout, GeometryOfATopicSegment) {
  // 32 consumers, a 1000-byte schema, 4096 slots of 256 bytes.
  const TopicGeometry g = topic_geometry(32, 1000, 256, 4096);
  EXPECT_EQ(g.consumers_offset, 1024u);
  EXPECT_EQ(g.schema_offset, 1024u + 32 * 128);
  EXPECT_EQ(g.slots_offset, 8192u);
  EXPECT_EQ(g.segment_bytes, 8192u + 4096 * 256);
  EXPECT_EQ(directory_bytes(1024), 512u + 1024 * 128);
}

TEST(Layout, SharedTypesArePlainAndLockFree) {
  static_assert(std::is_standard_layout_v<TopicHeader>);
  static_assert(std::is_standard_layout_v<DirectoryHeader>);
  static_assert(std::is_standard_layout_v<DirectoryEntry>);
  static_assert(std::is_trivially_destructible_v<TopicHeader>);
  static_assert(std::is_trivially_destructible_v<ConsumerEntry>);
  static_assert(std::is_trivially_destructible_v<SlotHeader>);
  static_assert(std::atomic<std::uint64_t>::is_always_lock_free);
  SUCCEED();
}

TEST(Layout, ClaimWordPacksStateAndIdentity) {
  const Identity id = (std::uint64_t{4194303} << kIdentityPidShift) | kIdentityStartMask;
  const std::uint64_t w = make_claim(ClaimState::Active, id);
  EXPECT_EQ(claim_state(w), ClaimState::Active);
  EXPECT_EQ(claim_owner(w), id);
  EXPECT_EQ(identity_pid(claim_owner(w)), 4194303u);
  EXPECT_EQ(claim_state(make_claim(ClaimState::Claiming, id)), ClaimState::Claiming);
  EXPECT_NE(make_claim(ClaimState::Claiming, id), make_claim(ClaimState::Active, id));
  EXPECT_EQ(make_claim(ClaimState::Free, 0), 0u);
}

}  // namespace
}  // namespace shmbus::detail
