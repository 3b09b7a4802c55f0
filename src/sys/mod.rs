//! The thin libc edge: everything here is `unsafe` FFI with a safe signature.
pub mod clock;
pub mod fd;
pub mod inotify;
pub mod netns;
pub mod poll;
pub mod privilege;
pub mod spawn;
pub mod sysctl;
