#pragma once
// bus-bridge redrive: re-injects the dead letters of one route after their cause is fixed.
//
// The dead-letter topic is read as an observer (read-only, from the oldest message still in
// its ring); the letters whose source is "<bridge>/<route>" and whose time is at or after
// --since are sent again:
//   inbound route   back to where they came from (PUBLISH to the channel, XADD to the stream,
//                   publish to the queue through the default exchange), so the running bridge
//                   takes them again with its current configuration and schemas
//   outbound route  to the route's target (channel / stream / exchange with routing key)
// Each one is confirmed by the server before the next is counted. Prints one line per
// letter and a total. Redriving twice sends twice: use --since to bound it.
#include <string>

namespace shmbus::bridge {

struct RedriveOptions {
  std::string config_file;
  std::string route;
  std::string since;
  bool dry_run = false;
};

// Returns the exit code (0 done, 1 a runtime error); throws ConfigError for bad options.
int run_redrive(const RedriveOptions& options);

}  // namespace shmbus::bridge
