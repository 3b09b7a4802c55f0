//! Captured `journalctl --output=json` lines (tests/fixtures/journal/) through the journal
//! parser: each lifecycle message names its unit and change; the rest are skipped or errors.

use netmgrd::wire::journal::{parse_line, JournalError, Lines, UnitChange, UnitEvent};

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/tests/fixtures/journal/{name}", env!("CARGO_MANIFEST_DIR"))).expect("fixture")
}

fn parse_all(bytes: &[u8]) -> Vec<Result<Option<UnitEvent>, JournalError>> {
    let mut out = Vec::new();
    let mut lines = Lines::default();
    // Odd-sized reads, as a pipe delivers them.
    for chunk in bytes.chunks(97) {
        lines.feed(chunk, |l| out.push(parse_line(l)));
    }
    out
}

fn ev(unit: &str, user: bool, change: UnitChange) -> Result<Option<UnitEvent>, JournalError> {
    Ok(Some(UnitEvent { unit: unit.into(), user, change }))
}

#[test]
fn captured_lifecycle_lines_name_units_and_changes() {
    use UnitChange::*;
    assert_eq!(
        parse_all(&fixture("units.jsonl")),
        vec![
            ev("postfix.service", false, Started),
            ev("postfix.service", false, Stopped),
            ev("postfix.service", false, Stopped),
            ev("app-firefox-1234.scope", true, Started),
            ev("getty@tty1.service", false, Started),
            ev("web.service", false, Stopped),
            ev("web.service", false, Stopped),
            // The non-UTF-8 unit (an array of bytes) is no unit name.
            Ok(None),
        ]
    );
}

#[test]
fn truncated_and_garbage_lines_are_errors_and_the_next_good_line_still_counts() {
    let got = parse_all(&fixture("garbage.jsonl"));
    assert_eq!(got.len(), 6);
    assert!(got[..3].iter().all(|r| matches!(r, Err(JournalError::NotJson(_)))), "{got:?}");
    assert!(matches!(got[3], Err(JournalError::BadUnit(_))));
    assert!(matches!(got[4], Err(JournalError::NotJson(_))));
    assert_eq!(got[5], ev("postfix.service", false, UnitChange::Stopped));
}
