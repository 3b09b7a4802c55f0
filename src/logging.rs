//! The `log` backend: stderr without timestamps (init systems add their own), or syslog
//! (facility daemon). `auto` picks stderr when stderr goes anywhere but /dev/null.

use crate::config::LogTarget;
use log::{Log, Metadata, Record};
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::sync::Mutex;

/// Libraries (neli) log every message they send at debug: only our own debug lines pass.
fn wanted(m: &Metadata<'_>) -> bool {
    m.level() <= log::max_level() && (m.level() <= log::Level::Warn || m.target().starts_with("netmgrd"))
}

struct StderrLogger;

impl Log for StderrLogger {
    fn enabled(&self, m: &Metadata<'_>) -> bool {
        wanted(m)
    }

    fn log(&self, r: &Record<'_>) {
        if self.enabled(r.metadata()) {
            // Formatted first and written with one write(2): lines from a pipe an init system
            // reads never interleave (writeln! on stderr writes piece by piece).
            let line = format!("{}: {}\n", r.level().as_str().to_ascii_lowercase(), r.args());
            let _ = std::io::stderr().lock().write_all(line.as_bytes());
        }
    }

    fn flush(&self) {}
}

struct SyslogLogger(Mutex<syslog::Logger<syslog::LoggerBackend, syslog::Formatter3164>>);

impl Log for SyslogLogger {
    fn enabled(&self, m: &Metadata<'_>) -> bool {
        wanted(m)
    }

    fn log(&self, r: &Record<'_>) {
        if !self.enabled(r.metadata()) {
            return;
        }
        let Ok(mut w) = self.0.lock() else { return };
        let msg = r.args().to_string();
        let _ = match r.level() {
            log::Level::Error => w.err(msg),
            log::Level::Warn => w.warning(msg),
            log::Level::Info => w.info(msg),
            log::Level::Debug | log::Level::Trace => w.debug(msg),
        };
    }

    fn flush(&self) {}
}

/// True when stderr is open and not /dev/null: a tty, or a pipe an init system reads.
fn stderr_is_captured() -> bool {
    match (std::fs::metadata("/proc/self/fd/2"), std::fs::metadata("/dev/null")) {
        (Ok(err), Ok(null)) => !(err.dev() == null.dev() && err.ino() == null.ino()),
        (Ok(_), Err(_)) => true,
        (Err(_), _) => false,
    }
}

/// Installs the logger once per process; returns the target used.
pub fn init(target: LogTarget, level: log::LevelFilter) -> LogTarget {
    let use_syslog = match target {
        LogTarget::Syslog => true,
        LogTarget::Stderr => false,
        LogTarget::Auto => !stderr_is_captured(),
    };
    log::set_max_level(level);
    if use_syslog {
        let formatter = syslog::Formatter3164 {
            facility: syslog::Facility::LOG_DAEMON,
            hostname: None,
            process: "netmgrd".into(),
            pid: std::process::id(),
        };
        if let Ok(logger) = syslog::unix(formatter) {
            if log::set_boxed_logger(Box::new(SyslogLogger(Mutex::new(logger)))).is_ok() {
                return LogTarget::Syslog;
            }
        }
    }
    let _ = log::set_boxed_logger(Box::new(StderrLogger));
    LogTarget::Stderr
}
