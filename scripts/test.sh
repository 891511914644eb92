#!/usr/bin/env bash
# The whole test suite: installs what is missing, checks formatting, builds with -Werror, runs
# every CTest test, then builds again with AddressSanitizer + UBSan and runs every test again.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh

echo "== clang-format"
unformatted=$(git ls-files '*.c' '*.h' | xargs -r clang-format --dry-run -Werror 2>&1 | grep -c 'error:' || true)
if [[ $unformatted -ne 0 ]]; then
  git ls-files '*.c' '*.h' | xargs -r clang-format --dry-run -Werror
  echo "clang-format: $unformatted places differ from .clang-format" >&2
  exit 1
fi

jobs=${TEST_JOBS:-$(nproc)}
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

echo "== build (plain, -Werror)"
scripts/build.sh build -DTODO_WERROR=ON
echo "== tests (plain)"
ctest --test-dir build --output-on-failure -j "$jobs"

echo "== build (AddressSanitizer + UBSan, -Werror)"
scripts/build.sh build-asan -DTODO_WERROR=ON -DTODO_SANITIZE=ON
echo "== tests (sanitizers)"
ctest --test-dir build-asan --output-on-failure -j "$jobs"
