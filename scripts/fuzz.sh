#!/usr/bin/env bash
# Runs every fuzz target in fuzz/ (cargo-fuzz, libFuzzer) for a bounded time on its corpus in
# fuzz/corpus/<target>/, minimises the corpus (kept in the repository) and fails if a target
# crashed (the input is in fuzz/artifacts/<target>/).
#
#   scripts/fuzz.sh [seconds per target, default 60] [target ...]
#
# Needs a nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`). The targets are the
# functions of src/fuzz_targets.rs; the same functions run as property tests in `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_PER_TARGET="${1:-60}"
shift || true
TARGETS=("$@")
if [ ${#TARGETS[@]} -eq 0 ]; then
  TARGETS=(notification frontend_return amount inquiry_answer configuration)
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  echo "fuzz.sh: needs a nightly toolchain and cargo-fuzz (rustup toolchain install nightly; cargo install cargo-fuzz)" >&2
  exit 2
fi

cd fuzz
# No sanitizer: the code under test is safe Rust; libFuzzer's coverage guidance is what matters.
cargo +nightly fuzz build -O --sanitizer none
status=0
for target in "${TARGETS[@]}"; do
  mkdir -p "corpus/$target" "artifacts/$target"
  echo "== $target: ${SECONDS_PER_TARGET}s"
  log="$(mktemp)"
  if cargo +nightly fuzz run -O --sanitizer none "$target" "corpus/$target" -- \
      -max_total_time="$SECONDS_PER_TARGET" -max_len=4096 -timeout=10 -print_final_stats=1 >"$log" 2>&1; then
    grep -E "^(stat::number_of_executed_units|stat::new_units_added|#[0-9]+ +DONE)" "$log" || tail -3 "$log"
  else
    status=1
    echo "fuzz.sh: $target FAILED; reproducer in fuzz/artifacts/$target/" >&2
    grep -E "panicked|ERROR|Test unit written" "$log" >&2 || tail -20 "$log" >&2
  fi
  rm -f "$log"
  # Keep the corpus small: only inputs that add coverage.
  cargo +nightly fuzz cmin -O --sanitizer none "$target" "corpus/$target" >/dev/null 2>&1 || true
  echo "   corpus: $(find "corpus/$target" -type f | wc -l) inputs"
done
exit $status
