//! Positions in the config text for errors serde cannot place (serde_yaml keeps no
//! positions after parsing), and the "did you mean" for unknown keys. Every function here is
//! linear in the text and terminates on any input, including empty needles.

use super::schema::NatConfig;

/// Gives each `nat:` entry the line it starts on (serde_yaml keeps no positions).
pub(super) fn number_entries(text: &str, nat: &mut NatConfig) {
    let after = text.lines().position(|l| l.starts_with("nat:")).unwrap_or(0);
    let lines = |key: &str| list_item_lines(text, key, Some(after));
    let fill = |lines: Vec<usize>, n: usize| -> Vec<usize> {
        let last = lines.last().copied().unwrap_or(after + 1);
        (0..n).map(|i| lines.get(i).copied().unwrap_or(last)).collect()
    };
    let numbered = fill(lines("dnat"), nat.dnat.len());
    for (r, l) in nat.dnat.iter_mut().zip(numbered) {
        r.line = l;
    }
    let numbered = fill(lines("snat"), nat.snat.len());
    for (r, l) in nat.snat.iter_mut().zip(numbered) {
        r.line = l;
    }
    let numbered = fill(lines("masquerade"), nat.masquerade.len());
    for (r, l) in nat.masquerade.iter_mut().zip(numbered) {
        r.line = l;
    }
    let numbered = fill(lines("forward"), nat.forward.len());
    for (r, l) in nat.forward.iter_mut().zip(numbered) {
        r.line = l;
    }
}

/// For a key holding a list: the 1-based line of each block-style item (`- ...`), or of the
/// key itself for flow style (`key: [...]`). With `key` alone (no list), its own line.
fn list_item_lines(text: &str, key: &str, after_line: Option<usize>) -> Vec<usize> {
    let lines: Vec<&str> = text.lines().collect();
    let start = after_line.unwrap_or(0);
    let indent = |l: &str| l.len() - l.trim_start().len();
    let Some(k) = (start..lines.len()).find(|&i| {
        let t = lines[i].trim_start();
        t.starts_with(&format!("{key}:")) && !t.starts_with('#')
    }) else {
        return Vec::new();
    };
    let key_indent = indent(lines[k]);
    let rest = lines[k].trim_start()[key.len() + 1..].trim();
    if !rest.is_empty() && !rest.starts_with('#') {
        return vec![k + 1]; // flow style: every item on the key's line
    }
    let mut out = Vec::new();
    let mut item_indent = None;
    for (i, l) in lines.iter().enumerate().skip(k + 1) {
        let t = l.trim_start();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        if indent(l) <= key_indent && !t.starts_with("- ") && t != "-" {
            break;
        }
        if indent(l) < key_indent {
            break;
        }
        if t.starts_with("- ") || t == "-" {
            match item_indent {
                None => item_indent = Some(indent(l)),
                Some(ii) if indent(l) != ii => continue,
                _ => {}
            }
            out.push(i + 1);
        }
    }
    if out.is_empty() {
        out.push(k + 1);
    }
    out
}

/// serde_yaml appends " at line L column C"; the position is printed in front instead.
/// Unknown-field errors get a "did you mean" when one expected name is close.
pub(super) fn clean_message(message: &str) -> String {
    let base = match message.find(" at line ") {
        Some(i) => &message[..i],
        None => message,
    };
    let mut out = base.to_string();
    if let Some(rest) = base.split_once("unknown field `").map(|(_, r)| r) {
        if let Some((field, expected)) = rest.split_once('`') {
            let best =
                expected.split('`').skip(1).step_by(2).map(|cand| (edit_distance(field, cand), cand)).min();
            if let Some((d, cand)) = best {
                if d <= 2 {
                    out.push_str(&format!(" (did you mean `{cand}`?)"));
                }
            }
        }
    }
    out
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = if ca == *cb { prev } else { 1 + prev.min(cur).min(row[j]) };
            prev = cur;
        }
    }
    row[b.len()]
}

/// serde_yaml places errors from our own value checks at the start of the enclosing mapping;
/// the message quotes the offending value, so point at that value when it follows.
pub(super) fn refine_position(text: &str, line: usize, column: usize, message: &str) -> (usize, usize) {
    let quoted = message.split('`').nth(1).filter(|q| !q.is_empty());
    if let Some(q) = quoted {
        let skipped: usize = text.lines().take(line.saturating_sub(1)).map(|l| l.len() + 1).sum();
        if let Some(rest) = text.get(skipped..) {
            let (l, c) = locate(rest, q, 0);
            if (l, c) != (1, 1) || rest.lines().next().is_some_and(|first| first.contains(q)) {
                return (line + l - 1, c);
            }
        }
    }
    (line, column)
}

/// 1-based line and column of the `nth` occurrence of `needle` as a whole YAML scalar;
/// `(1, 1)` when there is none (an empty needle has none).
pub(super) fn locate(text: &str, needle: &str, nth: usize) -> (usize, usize) {
    if needle.is_empty() {
        return (1, 1);
    }
    let mut found = 0;
    for (ln, line) in text.lines().enumerate() {
        let code = line.split(" #").next().unwrap_or(line);
        let mut start = 0;
        while let Some(pos) = code[start..].find(needle) {
            let col = start + pos;
            let before = code[..col].chars().next_back();
            let after = code[col + needle.len()..].chars().next();
            let boundary = |c: Option<char>| {
                c.is_none_or(|c| !(c.is_alphanumeric() || c == '_' || c == '-' || c == '.'))
            };
            if boundary(before) && boundary(after) {
                if found == nth {
                    return (ln + 1, col + 1);
                }
                found += 1;
            }
            start = col + needle.len();
        }
    }
    (1, 1)
}

/// The largest config file accepted (a real one is a few KiB).
pub(super) const MAX_CONFIG_BYTES: usize = 1 << 20;
/// Deepest flow (`[`/`{`) nesting and block indentation accepted. The schema needs 4 levels;
/// serde_yaml's loader is slow on deep nesting, so it never sees any.
const MAX_FLOW_DEPTH: usize = 32;
const MAX_INDENT: usize = 256;

/// A linear scan before the YAML parser: size, nesting depth and indentation within bounds.
/// Returns the position and message of the first excess.
pub(super) fn precheck(text: &str) -> Result<(), ((usize, usize), String)> {
    if text.len() > MAX_CONFIG_BYTES {
        return Err((
            (1, 1),
            format!("the file is {} bytes; at most {MAX_CONFIG_BYTES} are accepted", text.len()),
        ));
    }
    let mut depth = 0usize;
    // Inside a quoted scalar: the quote character.
    let mut quote: Option<char> = None;
    for (ln, line) in text.lines().enumerate() {
        let indent = line.len() - line.trim_start_matches(' ').len();
        if quote.is_none() && indent > MAX_INDENT {
            return Err((
                (ln + 1, 1),
                format!("indented {indent} columns; at most {MAX_INDENT} are accepted"),
            ));
        }
        let mut prev = ' ';
        let mut chars = line.char_indices().peekable();
        while let Some((col, c)) = chars.next() {
            match (quote, c) {
                (Some('"'), '\\') => {
                    chars.next(); // an escaped character
                }
                (Some(q), c) if c == q => {
                    // '' inside a single-quoted scalar is an escaped quote.
                    if q == '\'' && chars.peek().map(|(_, n)| *n) == Some('\'') {
                        chars.next();
                    } else {
                        quote = None;
                    }
                }
                (Some(_), _) => {}
                (None, '#') if prev == ' ' || prev == '\t' || col == 0 => break,
                (None, '"' | '\'') if matches!(prev, ' ' | '\t' | '[' | '{' | ',' | ':') || col == 0 => {
                    quote = Some(c);
                }
                (None, '[' | '{') => {
                    depth += 1;
                    if depth > MAX_FLOW_DEPTH {
                        return Err((
                            (ln + 1, col + 1),
                            format!("nested deeper than {MAX_FLOW_DEPTH} levels"),
                        ));
                    }
                }
                (None, ']' | '}') => depth = depth.saturating_sub(1),
                _ => {}
            }
            prev = c;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locate_terminates_on_any_needle() {
        assert_eq!(locate("a: 1\n", "", 0), (1, 1));
        assert_eq!(locate("interfaces:\n  - name: eth0\n", "eth0", 0), (2, 11));
        assert_eq!(locate("x", "missing", 3), (1, 1));
    }

    #[test]
    fn precheck_bounds_nesting_size_and_indentation() {
        assert!(precheck("interfaces: [{ name: eth0, zone: \"[[[[\" }]\n").is_ok());
        assert!(precheck("a: '[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[['\n").is_ok());
        let deep = format!("interfaces: {}{}\n", "[".repeat(100_000), "]".repeat(100_000));
        let ((line, col), msg) = precheck(&deep).unwrap_err();
        assert_eq!((line, col), (1, 13 + MAX_FLOW_DEPTH));
        assert!(msg.contains("nested deeper"), "{msg}");
        assert!(precheck(&"#".repeat(MAX_CONFIG_BYTES + 1)).is_err());
        assert!(precheck(&format!("a:\n{}b: 1\n", " ".repeat(300))).is_err());
    }
}
