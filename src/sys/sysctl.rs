//! sysctl writes through /proc/sys.

use std::io;

/// Writes `1` unless the knob already reads `1`; `Ok(true)` when it was changed.
pub fn turn_on(path: &str) -> io::Result<bool> {
    if std::fs::read_to_string(path).is_ok_and(|v| v.trim() == "1") {
        return Ok(false);
    }
    std::fs::write(path, "1").map(|()| true)
}
