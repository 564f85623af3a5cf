#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| wpkg_fuzz::extract(data));
