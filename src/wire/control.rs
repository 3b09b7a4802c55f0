//! Control protocol: one request line in, one JSON reply line out.
//!
//! Request: a command word and optional arguments, e.g. `status`. Reply:
//! `{"ok":true,"result":...}` or `{"ok":false,"error":"..."}`.

use serde_json::Value;

/// The longest request line accepted (bytes, without the newline).
pub const MAX_LINE: usize = 4096;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    Ping,
    Status,
    Reload,
    Sets,
    Resync,
    Containers,
    Ruleset,
    Metrics,
    Cgroups,
    Help,
}

/// (command, arguments, what it does): the `help` reply and the README list.
pub const COMMANDS: &[(&str, &str)] = &[
    ("ping", "liveness check; replies \"pong\""),
    ("status", "version, uptime, config path, zones with their interfaces and sets, last error"),
    ("reload", "re-read the config; an invalid one is reported and the old one stays in force"),
    ("sets", "every managed set with its elements"),
    ("resync", "re-read every managed set and re-dump links and addresses, then reconcile"),
    ("ruleset", "the table netmgrd owns as nft text, with its current elements"),
    ("containers", "running containers netmgrd tracks: name, id, addresses per network, ports, sets"),
    ("metrics", "counters and the event-to-commit latency histogram in Prometheus text format"),
    ("cgroups", "each cgroup a cgroup set takes: path, id, set (and the ones left out by level)"),
    ("help", "this list"),
];

pub fn parse_request(line: &[u8]) -> Result<Request, String> {
    let text = std::str::from_utf8(line).map_err(|_| "request is not UTF-8".to_string())?;
    let mut words = text.split_whitespace();
    let Some(cmd) = words.next() else {
        return Err("empty request; try `help`".to_string());
    };
    let request = match cmd.to_ascii_lowercase().as_str() {
        "ping" => Request::Ping,
        "status" => Request::Status,
        "reload" => Request::Reload,
        "sets" => Request::Sets,
        "resync" => Request::Resync,
        "containers" => Request::Containers,
        "ruleset" => Request::Ruleset,
        "metrics" => Request::Metrics,
        "cgroups" => Request::Cgroups,
        "help" => Request::Help,
        _ => {
            let shown: String = cmd.chars().take(64).collect();
            return Err(format!("unknown command `{}`; try `help`", shown.escape_debug()));
        }
    };
    if let Some(extra) = words.next() {
        let shown: String = extra.chars().take(64).collect();
        return Err(format!("`{cmd}` takes no arguments (got `{}`)", shown.escape_debug()));
    }
    Ok(request)
}

/// Written by hand so `ok` comes first, as documented (serde_json sorts object keys).
pub fn reply_ok(result: Value) -> String {
    format!("{{\"ok\":true,\"result\":{result}}}\n")
}

pub fn reply_err(error: &str) -> String {
    format!("{{\"ok\":false,\"error\":{}}}\n", Value::String(error.to_string()))
}

/// Accumulates bytes from a client and yields complete lines.
#[derive(Debug, Default)]
pub struct LineBuffer {
    buf: Vec<u8>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    /// A complete line without its `\n` (and without a trailing `\r`).
    Complete(Vec<u8>),
    /// More than `MAX_LINE` bytes without a newline.
    TooLong,
}

impl LineBuffer {
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete line, if any.
    pub fn next_line(&mut self) -> Option<Line> {
        match self.buf.iter().position(|b| *b == b'\n') {
            Some(pos) if pos <= MAX_LINE + 1 => {
                let mut line: Vec<u8> = self.buf.drain(..=pos).collect();
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                if line.len() > MAX_LINE {
                    return Some(Line::TooLong);
                }
                Some(Line::Complete(line))
            }
            Some(_) => Some(Line::TooLong),
            None if self.buf.len() > MAX_LINE + 1 => Some(Line::TooLong),
            None => None,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Bytes held (complete and partial lines).
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Whether a complete (or over-long) line is waiting.
    pub fn has_line(&self) -> bool {
        self.buf.len() > MAX_LINE + 1 || self.buf.contains(&b'\n')
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_commands() {
        assert_eq!(parse_request(b"ping"), Ok(Request::Ping));
        assert_eq!(parse_request(b"  STATUS  "), Ok(Request::Status));
        assert_eq!(parse_request(b"reload"), Ok(Request::Reload));
        assert!(parse_request(b"").unwrap_err().contains("empty"));
        assert!(parse_request(b"frobnicate").unwrap_err().contains("unknown command `frobnicate`"));
        assert!(parse_request(b"ping extra").unwrap_err().contains("takes no arguments"));
        assert!(parse_request(&[0xff, 0xfe]).unwrap_err().contains("UTF-8"));
    }

    #[test]
    fn replies_are_single_json_lines() {
        let ok = reply_ok(json!("pong"));
        assert_eq!(ok, "{\"ok\":true,\"result\":\"pong\"}\n");
        let err = reply_err("bad \"thing\"\nnext");
        assert_eq!(err.matches('\n').count(), 1);
        let v: Value = serde_json::from_str(err.trim()).unwrap();
        assert_eq!(v["ok"], false);
        assert_eq!(v["error"], "bad \"thing\"\nnext");
    }

    #[test]
    fn lines_split_across_reads_and_caps() {
        let mut b = LineBuffer::default();
        b.push(b"pi");
        assert_eq!(b.next_line(), None);
        b.push(b"ng\r\nstatus\nre");
        assert_eq!(b.next_line(), Some(Line::Complete(b"ping".to_vec())));
        assert_eq!(b.next_line(), Some(Line::Complete(b"status".to_vec())));
        assert_eq!(b.next_line(), None);
        let mut b = LineBuffer::default();
        b.push(&vec![b'a'; MAX_LINE]);
        assert_eq!(b.next_line(), None, "exactly MAX_LINE without newline may still end");
        b.push(b"\n");
        assert!(matches!(b.next_line(), Some(Line::Complete(l)) if l.len() == MAX_LINE));
        b.push(&vec![b'a'; MAX_LINE + 2]);
        assert_eq!(b.next_line(), Some(Line::TooLong));
    }
}
