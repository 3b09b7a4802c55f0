//! systemd journal entries as `journalctl --output=json` prints them, one JSON object per line:
//! the unit lifecycle messages systemd (PID 1 and user managers) logs, by `MESSAGE_ID`. Pure:
//! bytes in, unit changes out, with a cap on line length.
//!
//! journalctl prints a field as a string, as an array of byte values when it is not UTF-8, as
//! an array when the entry has the field more than once, and as `null` when it is too large.

use serde_json::{Map, Value};

/// Longest line kept: netmgrd asks journalctl for a few short fields only.
pub const MAX_LINE: usize = 64 * 1024;
/// Longest unit name systemd accepts (`UNIT_NAME_MAX`).
pub const MAX_UNIT_NAME: usize = 255;

/// What a lifecycle message says happened to a unit; either way its cgroups are looked at
/// again (the journal is a trigger, the cgroup tree is the truth).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum UnitChange {
    /// A start job finished: the unit's cgroup exists now.
    Started,
    /// Stopped, deactivated, failed or scheduled for restart: its cgroup goes (perhaps a
    /// moment after the message).
    Stopped,
}

/// `MESSAGE_ID`s of systemd's unit lifecycle messages (systemd's message catalog).
pub const MESSAGE_IDS: [(&str, UnitChange); 7] = [
    ("39f53479d3a045ac8e11786248231fbf", UnitChange::Started), // a start job finished
    ("9d1aaa27d60140bd96365438aad20286", UnitChange::Stopped), // a stop job finished
    ("7ad2d189f7e94e70a38c781354912448", UnitChange::Stopped), // unit succeeded (deactivated)
    ("d9b373ed55a64feb8242e02dbe79a49c", UnitChange::Stopped), // unit failed
    ("be02cf6855d2428ba40df7e9d022f03d", UnitChange::Stopped), // a start job failed
    ("5eb03494b6584870a536b337290809b3", UnitChange::Stopped), // automatic restart scheduled
    ("ae8f7b866b0347b9af31fe1c80b127c0", UnitChange::Stopped), // resources consumed (unit dead)
];

/// Fields netmgrd asks journalctl for (`--output-fields`; the cursor and timestamps come too).
pub const FIELDS: &str = "MESSAGE_ID,UNIT,USER_UNIT";

/// One lifecycle message: the unit and what happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnitEvent {
    pub unit: String,
    /// Logged by a user manager (`USER_UNIT`) rather than PID 1 (`UNIT`).
    pub user: bool,
    pub change: UnitChange,
}

#[derive(Debug, PartialEq, Eq)]
pub enum JournalError {
    /// Not a JSON object.
    NotJson(String),
    /// A lifecycle message whose unit name is not a unit name.
    BadUnit(String),
}

impl std::fmt::Display for JournalError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JournalError::NotJson(e) => write!(f, "journal line is not a JSON object: {e}"),
            JournalError::BadUnit(u) => write!(f, "journal names an invalid unit {u:?}"),
        }
    }
}

/// A field's text when the entry has it once as UTF-8 (the only form a unit name takes).
fn text<'a>(entry: &'a Map<String, Value>, field: &str) -> Option<&'a str> {
    match entry.get(field) {
        Some(Value::String(s)) => Some(s),
        _ => None,
    }
}

/// Valid systemd unit name: `name.type`, from the characters systemd allows.
pub fn valid_unit_name(s: &str) -> bool {
    let allowed = |c: char| c.is_ascii_alphanumeric() || ":-_.\\@".contains(c);
    !s.is_empty()
        && s.len() <= MAX_UNIT_NAME
        && s.chars().all(allowed)
        && s.rfind('.').is_some_and(|i| i > 0 && i + 1 < s.len())
}

/// Decodes one line. `Ok(None)`: a valid entry that is not a unit lifecycle message.
pub fn parse_line(line: &[u8]) -> Result<Option<UnitEvent>, JournalError> {
    let entry: Map<String, Value> =
        serde_json::from_slice(line).map_err(|e| JournalError::NotJson(e.to_string()))?;
    let Some(change) = text(&entry, "MESSAGE_ID")
        .and_then(|id| MESSAGE_IDS.iter().find(|(known, _)| *known == id))
        .map(|(_, c)| *c)
    else {
        return Ok(None);
    };
    let (unit, user) = match (text(&entry, "UNIT"), text(&entry, "USER_UNIT")) {
        (_, Some(u)) => (u, true),
        (Some(u), None) => (u, false),
        (None, None) => return Ok(None),
    };
    if !valid_unit_name(unit) {
        return Err(JournalError::BadUnit(unit.chars().take(MAX_UNIT_NAME).collect()));
    }
    Ok(Some(UnitEvent { unit: unit.to_string(), user, change }))
}

/// Splits a byte stream into lines; a line longer than `MAX_LINE` is dropped whole (and
/// counted) instead of growing the buffer.
#[derive(Debug, Default)]
pub struct Lines {
    partial: Vec<u8>,
    /// Inside an over-long line: drop bytes up to its newline.
    skipping: bool,
    pub overlong: u64,
}

impl Lines {
    /// Feeds `bytes`; calls `line` for each complete line (without its newline).
    pub fn feed(&mut self, mut bytes: &[u8], mut line: impl FnMut(&[u8])) {
        while let Some(nl) = bytes.iter().position(|&b| b == b'\n') {
            let (head, rest) = (&bytes[..nl], &bytes[nl + 1..]);
            if self.skipping {
                self.skipping = false;
            } else if self.partial.len() + head.len() > MAX_LINE {
                self.overlong += 1;
                self.partial.clear();
            } else if self.partial.is_empty() {
                line(head);
            } else {
                self.partial.extend_from_slice(head);
                line(&self.partial);
                self.partial.clear();
            }
            bytes = rest;
        }
        if self.skipping {
            return;
        }
        if self.partial.len() + bytes.len() > MAX_LINE {
            self.overlong += 1;
            self.partial.clear();
            self.skipping = true;
        } else {
            self.partial.extend_from_slice(bytes);
        }
    }

    /// Bytes of an unfinished line (a child that died mid-line leaves them): dropped.
    pub fn reset(&mut self) {
        self.partial.clear();
        self.skipping = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STARTED: &str = r#"{"__CURSOR":"s=a;i=1","__REALTIME_TIMESTAMP":"1796526370443242","__MONOTONIC_TIMESTAMP":"748106045","_BOOT_ID":"03","UNIT":"postfix.service","MESSAGE_ID":"39f53479d3a045ac8e11786248231fbf"}"#;

    #[test]
    fn lifecycle_messages_name_the_unit_and_the_change() {
        assert_eq!(
            parse_line(STARTED.as_bytes()),
            Ok(Some(UnitEvent { unit: "postfix.service".into(), user: false, change: UnitChange::Started }))
        );
        let user = r#"{"USER_UNIT":"app-firefox-1.scope","UNIT":"user@1000.service","MESSAGE_ID":"9d1aaa27d60140bd96365438aad20286"}"#;
        assert_eq!(
            parse_line(user.as_bytes()),
            Ok(Some(UnitEvent {
                unit: "app-firefox-1.scope".into(),
                user: true,
                change: UnitChange::Stopped
            }))
        );
    }

    #[test]
    fn other_entries_binary_and_repeated_fields_are_not_unit_changes() {
        assert_eq!(
            parse_line(br#"{"MESSAGE_ID":"ec387f577b844b8fa948f33cad9a75e6","UNIT":"x.service"}"#),
            Ok(None)
        );
        assert_eq!(parse_line(br#"{"MESSAGE":"hello"}"#), Ok(None));
        // Non-UTF-8 and repeated fields come as arrays; a too-large one as null.
        assert_eq!(
            parse_line(br#"{"MESSAGE_ID":"39f53479d3a045ac8e11786248231fbf","UNIT":[102,111,255]}"#),
            Ok(None)
        );
        assert_eq!(
            parse_line(br#"{"MESSAGE_ID":["39f53479d3a045ac8e11786248231fbf","x"],"UNIT":"a.service"}"#),
            Ok(None)
        );
        assert_eq!(parse_line(br#"{"MESSAGE_ID":null,"UNIT":null}"#), Ok(None));
    }

    #[test]
    fn garbage_truncation_and_bad_unit_names_are_errors() {
        assert!(matches!(parse_line(b"not json"), Err(JournalError::NotJson(_))));
        assert!(matches!(parse_line(&STARTED.as_bytes()[..40]), Err(JournalError::NotJson(_))));
        assert!(matches!(parse_line(b"[1,2]"), Err(JournalError::NotJson(_))));
        for bad in ["../etc.service", "noext", ".service", "a.", "a b.service"] {
            let line = format!(r#"{{"MESSAGE_ID":"39f53479d3a045ac8e11786248231fbf","UNIT":"{bad}"}}"#);
            assert!(matches!(parse_line(line.as_bytes()), Err(JournalError::BadUnit(_))), "{bad}");
        }
        assert!(valid_unit_name("getty@tty1.service") && valid_unit_name("system-getty.slice"));
    }

    #[test]
    fn lines_are_split_across_reads_and_overlong_ones_dropped_whole() {
        let mut lines = Lines::default();
        let mut got: Vec<Vec<u8>> = Vec::new();
        lines.feed(b"ab", |l| got.push(l.to_vec()));
        lines.feed(b"c\nde\n\nf", |l| got.push(l.to_vec()));
        assert_eq!(got, vec![b"abc".to_vec(), b"de".to_vec(), b"".to_vec()]);
        got.clear();
        // An over-long line, in pieces, then a normal one.
        let big = vec![b'x'; MAX_LINE];
        lines.feed(&big, |l| got.push(l.to_vec()));
        lines.feed(&big, |l| got.push(l.to_vec()));
        lines.feed(b"tail\nok\n", |l| got.push(l.to_vec()));
        assert_eq!(got, vec![b"ok".to_vec()]);
        assert_eq!(lines.overlong, 1);
        // A line of exactly MAX_LINE bytes is kept.
        got.clear();
        let mut exact = vec![b'y'; MAX_LINE];
        exact.push(b'\n');
        lines.feed(&exact, |l| got.push(l.to_vec()));
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].len(), MAX_LINE);
    }
}
