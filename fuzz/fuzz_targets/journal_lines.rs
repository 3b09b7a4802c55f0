#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| netmgrd::fuzz::journal_lines(data));
