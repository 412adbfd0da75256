// bus-inspect list [BUS]: the buses on this host, or one bus's topics.
#include <iostream>
#include <thread>

#include <shmbus/error.hpp>

#include "cli.hpp"

namespace inspect {

namespace {

struct BusLine {
  std::string name;
  std::optional<BusView> view;
  std::string problem;
  Frame first;
  Frame last;
};

void sleep_for(double seconds) {
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
}

int list_buses(const ListOptions& o) {
  std::vector<BusLine> buses;
  for (const std::string& name : shmbus::Bus::list()) {
    BusLine b;
    b.name = name;
    try {
      b.view.emplace(name);
      b.first = b.view->sample();
    } catch (const shmbus::Error& e) {
      if (e.code() == shmbus::Errc::NoSuchBus) continue;  // removed since it was listed
      b.view.reset();
      b.problem = e.what();
    }
    buses.push_back(std::move(b));
  }
  const bool rates = !o.no_rate && !buses.empty();
  if (rates) sleep_for(o.interval_s);
  for (BusLine& b : buses) {
    if (!b.view) continue;
    b.last = rates ? b.view->sample() : b.first;
  }

  Json out;
  Json arr = Json::array();
  Table table(
      {"BUS", ">TOPICS", ">PRODUCERS", ">CONSUMERS", ">DEAD", ">MESSAGES", ">RATE/S", "CREATED"});
  std::vector<std::string> problems;
  for (const BusLine& b : buses) {
    Json j;
    j["bus"] = b.name;
    if (!b.view || !b.last.exists) {
      const std::string why = b.view ? "removed while it was being read" : b.problem;
      j["error"] = why;
      arr.push_back(std::move(j));
      problems.push_back("  " + b.name + ": " + why);
      continue;
    }
    std::size_t producers = 0, consumers = 0, dead = 0;
    std::uint64_t messages = 0;
    for (const TopicRow& t : b.last.topics) {
      if (!t.snap) continue;
      messages += t.snap->head;
      if (t.snap->producer.attached) (t.snap->producer.alive ? producers : dead) += 1;
      for (const auto& c : t.snap->consumers) (c.alive ? consumers : dead) += 1;
    }
    const Rates r = rates ? rates_between(b.first, b.last) : Rates{};
    double rate = 0.0;
    for (const auto& [topic, v] : r.topic) rate += v;
    j["topics"] = b.last.topics.size();
    j["producers_alive"] = producers;
    j["consumers_alive"] = consumers;
    j["dead_participants"] = dead;
    j["messages"] = messages;
    j["rate"] = r.valid ? Json(rate) : Json(nullptr);
    j["created_ns"] = b.last.created_ns;
    arr.push_back(std::move(j));
    table.add(
        {b.name, std::to_string(b.last.topics.size()), std::to_string(producers),
         std::to_string(consumers), std::to_string(dead), std::to_string(messages),
         r.valid ? rate_text(rate) : "n/a",
         local_time(b.last.created_ns) + " (" + ago(b.last.created_ns, b.last.wall_ns) + ")"});
  }
  if (o.json) {
    out["buses"] = std::move(arr);
    std::cout << out.dump() << "\n";
    return 0;
  }
  if (buses.empty()) {
    std::cout << "no buses on this host (nothing named /dev/shm/shmbus.*)\n";
    return 0;
  }
  if (!table.empty())
    for (const std::string& l : table.lines()) std::cout << l << "\n";
  if (!problems.empty()) {
    std::cout << "\nbuses that cannot be read:\n";
    for (const std::string& p : problems) std::cout << p << "\n";
  }
  std::cout << "\n`bus-inspect list BUS` shows a bus's topics and consumers.\n";
  return 0;
}

int list_bus(const ListOptions& o) {
  BusView view(*o.bus);
  const Frame first = view.sample();
  Frame last = first;
  Rates r;
  if (!o.no_rate) {
    sleep_for(o.interval_s);
    last = view.sample();
    r = rates_between(first, last);
  }
  if (!last.exists) {
    throw shmbus::Error(shmbus::Errc::NoSuchBus,
                        "bus '" + *o.bus + "' was removed while it was being read");
  }
  if (o.json) {
    std::cout << frame_json(last, r) << "\n";
    return 0;
  }
  for (const std::string& l : render_frame(last, r, false)) std::cout << l << "\n";
  return 0;
}

}  // namespace

int run_list(const ListOptions& o) {
  return o.bus ? list_bus(o) : list_buses(o);
}

}  // namespace inspect
