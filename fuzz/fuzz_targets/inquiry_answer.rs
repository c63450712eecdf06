//! `pgw_relay::fuzz_targets::inquiry_answer` under libFuzzer.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pgw_relay::fuzz_targets::inquiry_answer(data));
