#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| netmgrd::fuzz::control_line(data));
