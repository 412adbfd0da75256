#!/usr/bin/env bash
# Writes an out-of-tree CMake project into DIR whose main.cpp is the README's
# example (the ```cpp block after the "<!-- example: readme-example -->"
# marker), so CI compiles exactly what the README shows, against the
# installed package: find_package(shmbus) + shmbus::shmbus. Every ```cpp
# block after a "<!-- snippet -->" marker is compiled too (not run), each as
# the body of a function that has a `bus`, a `pub` and the few names the
# guide uses without declaring (snippets.cpp), with warnings as errors.
#   extract-example.sh README.md DIR
set -euo pipefail
readme=$1
dir=$2
mkdir -p "$dir"
awk '/<!-- example: readme-example -->/ {found=1; next}
     found && /^```cpp/ {copy=1; next}
     copy && /^```/ {exit}
     copy {print}' "$readme" >"$dir/main.cpp"
if [[ ! -s "$dir/main.cpp" ]]; then
  echo "extract-example: no example block after the marker in $readme" >&2
  exit 1
fi
{
  cat <<'PRELUDE'
// Generated from the README's snippets by tests/consumer/extract-example.sh.
#include <algorithm>
#include <chrono>
#include <cstring>

#include <shmbus/messages.hpp>
#include <shmbus/shmbus.hpp>

using namespace shmbus;

namespace {
[[maybe_unused]] flatbuffers::FlatBufferBuilder request_fbb;
[[maybe_unused]] const std::byte bytes[32] = {};
[[maybe_unused]] flatbuffers::FlatBufferBuilder answer_for(const Message&) {
  return flatbuffers::FlatBufferBuilder();
}
[[maybe_unused]] void use(const risk::Exposure&) {}
}  // namespace
PRELUDE
  awk 'BEGIN {n = 0}
       /<!-- snippet -->/ {want = 1; next}
       want && /^```cpp/ {copy = 1; want = 0; n++;
         printf "\n[[maybe_unused]] void snippet_%d(Bus& bus, Publisher& pub) {\n  (void)bus;\n  (void)pub;\n", n; next}
       copy && /^```/ {copy = 0; print "}"; next}
       copy {print "  " $0}' "$readme"
} >"$dir/snippets.cpp"
if ! grep -q "snippet_1" "$dir/snippets.cpp"; then
  echo "extract-example: no <!-- snippet --> blocks in $readme" >&2
  exit 1
fi
cat >"$dir/CMakeLists.txt" <<'CMAKE'
cmake_minimum_required(VERSION 3.25)
project(shmbus_readme_example LANGUAGES CXX)
set(CMAKE_CXX_STANDARD 20)
set(CMAKE_CXX_STANDARD_REQUIRED ON)
find_package(shmbus 0.1 CONFIG REQUIRED)
add_executable(readme-example main.cpp snippets.cpp)
target_compile_options(readme-example PRIVATE -Wall -Wextra -Werror)
target_link_libraries(readme-example PRIVATE shmbus::shmbus)
CMAKE
