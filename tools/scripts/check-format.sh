#!/usr/bin/env bash
# Checks that the C++ sources follow the repository's .clang-format (100
# columns, Google-based): every tracked *.cpp, *.hpp and *.h under include/,
# src/, tools/, tests/ and bench/. Run by CI; run it before you commit.
#
#   tools/scripts/check-format.sh         list the files clang-format would change (exit 1 if any)
#   tools/scripts/check-format.sh --fix   rewrite those files in place
#   tools/scripts/check-format.sh FILE... only these files (either mode)
#
# Needs clang-format 14 (Debian 12's `clang-format` package): other versions
# format some constructs differently, so a file clean for one would fail with
# another. CLANG_FORMAT=/path/to/clang-format-14 picks the executable.
#
# Exit status: 0 when every file is formatted (or was rewritten by --fix);
# 1 when files differ, each listed; 2 for a usage error or a missing or
# wrong clang-format.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"

usage() { sed -n '2,16s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; }

fix=0
files=()
for arg in "$@"; do
  case $arg in
    --fix) fix=1 ;;
    -h | --help) usage; exit 0 ;;
    -*) echo "check-format: unknown option '$arg' (see --help)" >&2; exit 2 ;;
    *) files+=("$arg") ;;
  esac
done

cf=${CLANG_FORMAT:-clang-format}
if ! command -v "$cf" >/dev/null 2>&1; then
  echo "check-format: $cf not found; install it with: apt-get install -y clang-format" >&2
  exit 2
fi
version=$("$cf" --version | sed -n 's/.*version \([0-9][0-9]*\)\..*/\1/p')
if [[ $version != 14 ]]; then
  echo "check-format: needs clang-format 14 (Debian 12's clang-format), found: $("$cf" --version);" \
    "other versions format differently. Set CLANG_FORMAT to a clang-format 14." >&2
  exit 2
fi
if [[ ! -f $root/.clang-format ]]; then
  echo "check-format: $root/.clang-format is missing" >&2
  exit 2
fi

if ((${#files[@]} == 0)); then
  while IFS= read -r -d '' f; do
    case $f in *.cpp | *.hpp | *.h) files+=("$f") ;; esac
  done < <(git ls-files -z -- include src tools tests bench)
fi
if ((${#files[@]} == 0)); then
  echo "check-format: no C++ sources to check"
  exit 0
fi
for f in "${files[@]}"; do
  [[ -f $f ]] || { echo "check-format: no such file: $f" >&2; exit 2; }
done

# One clang-format run over all files; each difference is reported as
# "FILE:LINE:COL: error: code should be clang-formatted [-Wclang-format-violations]".
report=$(mktemp)
trap 'rm -f "$report"' EXIT
status=0
"$cf" --style=file --dry-run --Werror "${files[@]}" 2>"$report" || status=$?
mapfile -t differ < <(sed -n 's/^\(.*\):[0-9][0-9]*:[0-9][0-9]*: error: code should be clang-formatted.*/\1/p' \
  "$report" | sort -u)
if ((status != 0 && ${#differ[@]} == 0)); then
  # clang-format failed for another reason (an unreadable file, a bad .clang-format).
  cat "$report" >&2
  echo "check-format: $cf failed (exit $status)" >&2
  exit 2
fi

if ((${#differ[@]} == 0)); then
  echo "check-format: ${#files[@]} files follow .clang-format"
  exit 0
fi
if ((fix == 1)); then
  "$cf" --style=file -i "${differ[@]}"
  printf 'check-format: reformatted %d of %d files:\n' "${#differ[@]}" "${#files[@]}"
  printf '  %s\n' "${differ[@]}"
  exit 0
fi
printf 'check-format: %d of %d files differ from .clang-format:\n' "${#differ[@]}" "${#files[@]}"
printf '  %s\n' "${differ[@]}"
echo "Run tools/scripts/check-format.sh --fix to rewrite them (or see the differences with:" \
  "clang-format --style=file FILE | diff FILE -)."
exit 1
