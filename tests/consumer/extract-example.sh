#!/usr/bin/env bash
# Writes an out-of-tree CMake project into DIR whose main.cpp is the README's
# example (the ```cpp block after the "<!-- example: readme-example -->"
# marker), so CI compiles exactly what the README shows, against the
# installed package: find_package(shmbus) + shmbus::shmbus.
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
cat >"$dir/CMakeLists.txt" <<'CMAKE'
cmake_minimum_required(VERSION 3.25)
project(shmbus_readme_example LANGUAGES CXX)
set(CMAKE_CXX_STANDARD 20)
set(CMAKE_CXX_STANDARD_REQUIRED ON)
find_package(shmbus 0.1 CONFIG REQUIRED)
add_executable(readme-example main.cpp)
target_compile_options(readme-example PRIVATE -Wall -Wextra -Werror)
target_link_libraries(readme-example PRIVATE shmbus::shmbus)
CMAKE
