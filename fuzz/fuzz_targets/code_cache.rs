#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| wpkg_fuzz::code_cache(data));
