//! `pgw_relay::fuzz_targets::configuration` under libFuzzer.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pgw_relay::fuzz_targets::configuration(data));
