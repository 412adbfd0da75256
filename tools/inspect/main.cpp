// bus-inspect — the command-line window onto a live shmbus bus.
//
//   bus-inspect list [BUS]                    buses on this host, or one bus's topics
//   bus-inspect tail BUS TOPIC [-n N] [-f]    last messages as JSON lines, and new ones
//   bus-inspect publish BUS TOPIC [--json T]  JSON (or stdin lines) onto a topic
//   bus-inspect watch BUS                     live table, like top
//   bus-inspect schema BUS TOPIC              the topic's type and fields
//   bus-inspect gc [BUS]                      remove dead segments
//
// list, tail, watch and schema map segments read-only and never register
// as consumers: looking never disturbs the hot path. Exit codes: 0 success,
// 1 a named error, 2 bad usage (cli.hpp).
#include <iostream>

#include <CLI/CLI.hpp>

#include <shmbus/error.hpp>

#include "cli.hpp"

#ifndef SHMBUS_INSPECT_VERSION
#define SHMBUS_INSPECT_VERSION "unknown"
#endif

namespace {

constexpr const char* kFooter =
    "Exit codes: 0 success, 1 a named error (no such bus, no such topic, bad JSON, ...), 2 bad "
    "usage.\n"
    "Run 'bus-inspect SUBCOMMAND --help' for the options of each subcommand.";

int fail(const std::string& message, int code) {
  std::cerr << "bus-inspect: " << message << "\n";
  return code;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"bus-inspect: see what flows on a shmbus bus, who is behind, and what was lost.",
               "bus-inspect"};
  app.footer(kFooter);
  app.set_version_flag("--version",
                       std::string("bus-inspect (shmbus ") + SHMBUS_INSPECT_VERSION + ")");
  app.require_subcommand(1);

  inspect::ListOptions list;
  auto* c_list =
      app.add_subcommand("list",
                         "List the buses on this host, or with BUS, its topics: type, policy, "
                         "slot size and depth, producer, messages, rate and consumers "
                         "(lag, drops).");
  c_list->add_option("bus", list.bus, "a bus name (omit to list every bus)");
  c_list->add_flag("--json", list.json, "machine-readable output (one JSON object)");
  c_list->add_flag("--no-rate", list.no_rate,
                   "do not sample twice to compute rates (rate shows n/a)");
  c_list
      ->add_option("--interval", list.interval_s, "seconds between the two samples rates come from")
      ->check(CLI::Range(0.01, 60.0))
      ->capture_default_str();

  inspect::TailOptions tail;
  auto* c_tail =
      app.add_subcommand("tail",
                         "Print the last N messages of a topic as JSON lines (and, with "
                         "--follow, new ones as they come): topic, seq, ts, producer, type "
                         "and the message decoded from its FlatBuffer.");
  c_tail->add_option("bus", tail.bus, "the bus")->required();
  c_tail->add_option("topic", tail.topic, "the topic")->required();
  c_tail->add_option("-n,--lines", tail.count, "how many of the latest messages to print first")
      ->check(CLI::Validator(
          [](const std::string& v) {
            return !v.empty() && v.front() == '-' ? "must be 0 or more, got " + v : std::string();
          },
          "N >= 0"))
      ->capture_default_str();
  c_tail->add_flag("-f,--follow", tail.follow, "keep printing new messages until interrupted");
  c_tail->add_flag("--hex", tail.hex, "raw topics: payloads as hex instead of base64");

  inspect::PublishOptions pub;
  auto* c_pub = app.add_subcommand(
      "publish",
      "Publish one message given as JSON (or one per line of stdin) onto a topic, converted by the "
      "topic's "
      "schema. Nothing is published if any input is invalid. Refuses while another live producer "
      "owns the "
      "topic. Raw topics take bytes: --raw-hex, --raw-base64, or base64 lines on stdin.");
  c_pub->add_option("bus", pub.bus, "the bus")->required();
  c_pub->add_option("topic", pub.topic, "the topic")->required();
  auto* o_json =
      c_pub->add_option("--json", pub.json, "the message as JSON (default: read lines from stdin)");
  auto* o_hex =
      c_pub->add_option("--raw-hex", pub.raw_hex, "raw topics: the payload as hex digits");
  auto* o_b64 =
      c_pub->add_option("--raw-base64", pub.raw_base64, "raw topics: the payload as base64");
  o_json->excludes(o_hex)->excludes(o_b64);
  o_hex->excludes(o_b64);
  c_pub->add_option("--name", pub.name, "producer name shown to others while publishing")
      ->capture_default_str();
  c_pub
      ->add_option("--timeout", pub.timeout_s,
                   "reliable topics: seconds to wait for room in the ring")
      ->check(CLI::Range(0.0, 3600.0))
      ->capture_default_str();

  inspect::WatchOptions watch;
  auto* c_watch =
      app.add_subcommand("watch",
                         "A live table of the bus (rates, lag, drops, producer liveness), "
                         "refreshed in place like top; q or Ctrl-C quits.");
  c_watch->add_option("bus", watch.bus, "the bus")->required();
  c_watch->add_option("-i,--interval", watch.interval_s, "seconds between refreshes")
      ->check(CLI::Range(0.05, 3600.0))
      ->capture_default_str();
  auto* o_once =
      c_watch->add_flag("--once", watch.once, "print one frame (rates over one interval) and exit");
  auto* o_iter = c_watch->add_option(
      "--iterations", watch.iterations,
      "print this many frames, one per interval, without the full-screen display");
  o_once->excludes(o_iter);

  inspect::SchemaOptions schema;
  auto* c_schema = app.add_subcommand("schema",
                                      "Show a topic's message type and its fields (from the schema "
                                      "stored with the topic).");
  c_schema->add_option("bus", schema.bus, "the bus")->required();
  c_schema->add_option("topic", schema.topic, "the topic")->required();
  c_schema->add_flag("--json", schema.json, "machine-readable output");

  inspect::GcOptions gc;
  auto* c_gc =
      app.add_subcommand("gc",
                         "Remove segments whose producer and consumers are all dead (and "
                         "temporaries left by crashed creators); never touches a live one; "
                         "says what it removed and what it kept, and why.");
  c_gc->add_option("bus", gc.bus, "only this bus (default: every bus on the host)");
  c_gc->add_flag("--json", gc.json, "machine-readable output");
  c_gc->add_flag("-n,--dry-run", gc.dry_run, "say what would be removed, change nothing");

  for (CLI::App* sub : app.get_subcommands({})) sub->footer(kFooter);

  // CLI11 reports a mistyped subcommand as a missing one; name it instead.
  if (argc >= 2 && argv[1][0] != '-') {
    const std::string first = argv[1];
    bool known = false;
    std::string names;
    for (const CLI::App* sub : app.get_subcommands({})) {
      known = known || sub->get_name() == first;
      names += (names.empty() ? "" : ", ") + sub->get_name();
    }
    if (!known)
      return fail("unknown subcommand '" + first + "' (the subcommands are " + names +
                      ")\n"
                      "Run 'bus-inspect --help' for usage.",
                  2);
  }

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::string where = "bus-inspect";
    for (const CLI::App* sub : app.get_subcommands()) where += " " + sub->get_name();
    return fail(std::string(e.what()) + "\nRun '" + where + " --help' for usage.", 2);
  }

  try {
    if (c_list->parsed()) return inspect::run_list(list);
    if (c_tail->parsed()) return inspect::run_tail(tail);
    if (c_pub->parsed()) return inspect::run_publish(pub);
    if (c_watch->parsed()) return inspect::run_watch(watch);
    if (c_schema->parsed()) return inspect::run_schema(schema);
    if (c_gc->parsed()) return inspect::run_gc(gc);
  } catch (const inspect::UsageError& e) {
    return fail(e.what(), 2);
  } catch (const shmbus::Error& e) {
    return fail(e.what(), 1);
  } catch (const inspect::Failure& e) {
    return fail(e.what(), 1);
  } catch (const std::exception& e) {
    return fail(e.what(), 1);
  }
  return fail("no subcommand; run 'bus-inspect --help'", 2);
}
