// bus-inspect gc [BUS] [--dry-run]: removes dead segments (shmbus::collect_garbage)
// and says what it removed and what it kept, and why.
#include <iostream>

#include "cli.hpp"

namespace inspect {

namespace {

Json items(const std::vector<shmbus::GcItem>& v) {
  Json a = Json::array();
  for (const shmbus::GcItem& i : v) {
    Json j;
    j["kind"] = std::string(shmbus::to_string(i.kind));
    j["segment"] = i.segment;
    j["bus"] = i.bus;
    j["topic"] = i.topic;
    j["bytes"] = i.bytes;
    j["reason"] = i.reason;
    a.push_back(std::move(j));
  }
  return a;
}

std::string what(const shmbus::GcItem& i) {
  switch (i.kind) {
    case shmbus::GcKind::Directory:
      return "bus " + i.bus + " (directory)";
    case shmbus::GcKind::Topic:
      return "topic " + i.topic + " of bus " + i.bus;
    case shmbus::GcKind::DirectoryEntry:
      return "entry for " + i.topic + " in bus " + i.bus + "'s directory";
    case shmbus::GcKind::Temporary:
      return "temporary " + i.segment;
    case shmbus::GcKind::Unknown:
      return i.segment;
  }
  return i.segment;
}

void table(const std::vector<shmbus::GcItem>& v) {
  Table t({"WHAT", "SEGMENT", ">SIZE", "WHY"});
  for (const shmbus::GcItem& i : v)
    t.add({what(i), "/dev/shm/" + i.segment, i.bytes == 0 ? "-" : bytes_text(i.bytes), i.reason});
  for (const std::string& l : t.lines(2)) std::cout << l << "\n";
}

}  // namespace

int run_gc(const GcOptions& o) {
  const shmbus::GcReport r = shmbus::collect_garbage(
      o.bus ? std::optional<std::string_view>(*o.bus) : std::nullopt, o.dry_run);
  std::uint64_t freed = 0;
  for (const auto& i : r.removed) freed += i.bytes;
  if (o.json) {
    Json j;
    j["dry_run"] = r.dry_run;
    j["removed"] = items(r.removed);
    j["kept"] = items(r.kept);
    j["bytes_freed"] = freed;
    std::cout << j.dump() << "\n";
    return 0;
  }
  const std::string verb = r.dry_run ? "would remove" : "removed";
  if (r.removed.empty()) {
    std::cout << "nothing to remove" << (o.bus ? " on bus " + *o.bus : std::string()) << "\n";
  } else {
    std::cout << verb << " " << r.removed.size() << " item" << (r.removed.size() == 1 ? "" : "s")
              << " (" << bytes_text(freed) << "):\n";
    table(r.removed);
  }
  if (!r.kept.empty()) {
    std::cout << (r.removed.empty() ? "" : "\n") << "kept " << r.kept.size() << ":\n";
    table(r.kept);
  }
  if (r.dry_run && !r.removed.empty()) std::cout << "\n(dry run: nothing was changed)\n";
  return 0;
}

}  // namespace inspect
