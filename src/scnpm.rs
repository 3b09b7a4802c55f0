//! `netmgrd import-scnpm FILE`: reads the commented rules of systemd-cgroup-nftables-policy-
//! manager (scnpm) from an nftables.conf and turns them into netmgrd's form. Pure: text in,
//! config and nftables text out.
//!
//! scnpm's lines look like
//!
//! ```text
//! # postfix.service :: add rule inet filter vpn.whitelist \
//! #   socket cgroupv2 level 2 "system.slice/postfix.service" tcp dport 25 accept
//! ```
//!
//! (a `#` comment naming a unit, `::`, an `add rule` (or `rule`-less) command, continued over
//! further `#` lines while a line ends in `\`). scnpm re-adds such a rule whenever the unit
//! changes. netmgrd instead keeps a set of cgroup ids: rules that differ only in their cgroup
//! path become one rule matching `@set`, and each path becomes an entry of that set.

use std::collections::BTreeMap;
use std::fmt::Write;

/// One scnpm rule: the unit it follows and the nft command after `::`, with its line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScnpmRule {
    pub line: usize,
    pub unit: String,
    /// `FAMILY TABLE CHAIN MATCHES...` (without `add rule`).
    pub rule: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportError {
    pub line: usize,
    pub message: String,
}

impl std::fmt::Display for ImportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

/// What the import produced.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Import {
    /// The `cgroups:` section for netmgrd's config.
    pub config: String,
    /// Set declarations and the rewritten rules, as `nft -f` input.
    pub nft: String,
    pub errors: Vec<ImportError>,
    pub rules: usize,
}

/// `# UNIT :: ...` where UNIT looks like `name.type` (scnpm's own test).
fn start_of(line: &str) -> Option<(&str, &str)> {
    let body = line.trim_start_matches('#');
    if body.len() == line.len() {
        return None;
    }
    let (unit, rest) = body.trim_start().split_once(" ::")?;
    let unit_ok = !unit.is_empty()
        && !unit.contains(' ')
        && unit.rsplit_once('.').is_some_and(|(n, t)| {
            !n.is_empty() && !t.is_empty() && t.chars().all(|c| c.is_ascii_alphabetic())
        });
    let rest = rest.strip_prefix(' ')?;
    unit_ok.then_some((unit, rest))
}

/// Reads every scnpm rule of an nftables.conf.
pub fn parse(text: &str) -> (Vec<ScnpmRule>, Vec<ImportError>) {
    let mut rules = Vec::new();
    let mut errors = Vec::new();
    // (first line, unit, text so far) while a rule continues.
    let mut open: Option<(usize, String, String)> = None;
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        let line = raw.trim_end();
        let (first, unit, mut acc) = match open.take() {
            Some((first, unit, acc)) => {
                match line.strip_prefix('#') {
                    Some(cont) => (first, unit, format!("{acc} {}", cont.trim_start_matches('#').trim())),
                    None => {
                        errors.push(ImportError {
                        line: n,
                        message: format!("the rule for {unit} (line {first}) ends in `\\` but this line is not a comment"),
                    });
                        continue;
                    }
                }
            }
            None => match start_of(line) {
                Some((unit, rest)) => (n, unit.to_string(), rest.trim().to_string()),
                None => continue,
            },
        };
        if let Some(stripped) = acc.strip_suffix('\\') {
            acc = stripped.trim_end().to_string();
            open = Some((first, unit, acc));
            continue;
        }
        let cmd = acc.trim();
        let cmd = cmd.strip_prefix("add ").map(str::trim_start).unwrap_or(cmd);
        let cmd = cmd.strip_prefix("rule ").map(str::trim_start).unwrap_or(cmd);
        if cmd.split_whitespace().count() < 4 {
            errors.push(ImportError {
                line: first,
                message: format!("not a `FAMILY TABLE CHAIN ...` rule: {cmd}"),
            });
            continue;
        }
        rules.push(ScnpmRule {
            line: first,
            unit,
            rule: cmd.split_whitespace().collect::<Vec<_>>().join(" "),
        });
    }
    if let Some((first, unit, _)) = open {
        errors.push(ImportError {
            line: first,
            message: format!("the rule for {unit} ends in `\\` at the end of the file"),
        });
    }
    (rules, errors)
}

/// `socket cgroupv2 level N PATH` inside a rule: (level, path, text before, text after).
fn cgroup_match(rule: &str) -> Option<(u32, String, String, String)> {
    let at = rule.find("socket cgroupv2 level ")?;
    let after = &rule[at + "socket cgroupv2 level ".len()..];
    let (level, rest) = after.split_once(' ')?;
    let level: u32 = level.parse().ok()?;
    let rest = rest.trim_start();
    let (path, tail) = if let Some(q) = rest.strip_prefix('"') {
        let end = q.find('"')?;
        (q[..end].to_string(), q[end + 1..].to_string())
    } else {
        match rest.split_once(' ') {
            Some((p, t)) => (p.to_string(), t.to_string()),
            None => (rest.to_string(), String::new()),
        }
    };
    Some((level, path.trim_matches('/').to_string(), rule[..at].trim().to_string(), tail.trim().to_string()))
}

/// A set name from a chain name and level (`vpn.whitelist`, 2 -> `vpn_whitelist_l2`).
fn set_name(chain: &str, level: u32, taken: &BTreeMap<String, usize>) -> String {
    let base: String = chain.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
    let base = format!("{}_l{level}", base.trim_matches('_'));
    let mut name = base.clone();
    let mut k = 2;
    while taken.contains_key(&name) {
        name = format!("{base}_{k}");
        k += 1;
    }
    name
}

/// Rules that differ only in their cgroup path share one set.
struct Group {
    table: String,
    level: u32,
    set: String,
    /// The rule with `@set` in place of the path.
    rule: String,
    paths: Vec<(String, String)>,
}

/// Converts an nftables.conf with scnpm comments.
pub fn import(text: &str) -> Import {
    let (rules, mut errors) = parse(text);
    let mut groups: Vec<Group> = Vec::new();
    let mut names: BTreeMap<String, usize> = BTreeMap::new();
    for r in &rules {
        let Some((level, path, head, tail)) = cgroup_match(&r.rule) else {
            errors.push(ImportError {
                line: r.line,
                message: format!("no `socket cgroupv2 level N \"PATH\"` match in the rule for {}", r.unit),
            });
            continue;
        };
        if path.is_empty() {
            errors.push(ImportError { line: r.line, message: "an empty cgroup path".into() });
            continue;
        }
        let words: Vec<&str> = head.split_whitespace().collect();
        let (table, chain) = (format!("{} {}", words[0], words[1]), words[2]);
        let key = |set: &str| {
            let mut rule = format!("{head} socket cgroupv2 level {level} @{set}");
            if !tail.is_empty() {
                rule.push(' ');
                rule.push_str(&tail);
            }
            rule
        };
        let existing =
            groups.iter_mut().find(|g| g.table == table && g.level == level && g.rule == key(&g.set));
        match existing {
            Some(g) => {
                if !g.paths.iter().any(|(p, _)| *p == path) {
                    g.paths.push((path, r.unit.clone()));
                }
            }
            None => {
                let set = set_name(chain, level, &names);
                names.insert(set.clone(), groups.len());
                groups.push(Group {
                    table,
                    level,
                    rule: key(&set),
                    set,
                    paths: vec![(path, r.unit.clone())],
                });
            }
        }
    }
    let mut config = String::from("cgroups:\n  sets:\n");
    let mut decls = String::from("# Set declarations: add them where the tables are declared.\n");
    let mut out_rules = String::from("# Rules: in place of the commented scnpm rules.\n");
    for g in &groups {
        let _ = writeln!(
            config,
            "    - set: {}\n      table: {}\n      level: {}\n      paths:",
            g.set, g.table, g.level
        );
        for (p, unit) in &g.paths {
            let _ = writeln!(config, "        - \"{p}\"   # {unit}");
        }
        let _ =
            writeln!(decls, "add set {} {} {{ typeof socket cgroupv2 level {}; }}", g.table, g.set, g.level);
        let _ = writeln!(out_rules, "add rule {}", g.rule);
    }
    if groups.is_empty() {
        config = String::from("cgroups:\n  sets: []\n");
    }
    Import { config, nft: format!("{decls}\n{out_rules}"), errors, rules: rules.len() }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"
table inet filter { chain vpn.whitelist { } }
## Allow connections to/from vpn for system postfix.service
# postfix.service :: add rule inet filter vpn.whitelist \
#   socket cgroupv2 level 2 "system.slice/postfix.service" tcp dport 25 accept

# app-mail.scope :: add rule inet filter vpn.whitelist socket cgroupv2 level 5 \
#   "user.slice/user-1000.slice/user@1000.service/app.slice/app-mail.scope" \
#   tcp dport {25, 143} accept
# dovecot.service :: add rule inet filter vpn.whitelist socket cgroupv2 level 2 "system.slice/dovecot.service" tcp dport 25 accept
## Only allow whitelisted apps to connect over "my-vpn" iface
add rule inet filter output oifname my-vpn jump vpn.whitelist
"#;

    #[test]
    fn commented_rules_with_continuations_are_read() {
        let (rules, errors) = parse(SAMPLE);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(rules.len(), 3);
        assert_eq!(rules[0].line, 4);
        assert_eq!(rules[0].unit, "postfix.service");
        assert_eq!(
            rules[0].rule,
            r#"inet filter vpn.whitelist socket cgroupv2 level 2 "system.slice/postfix.service" tcp dport 25 accept"#
        );
        assert_eq!(rules[1].unit, "app-mail.scope");
        assert!(rules[1].rule.ends_with("app-mail.scope\" tcp dport {25, 143} accept"), "{}", rules[1].rule);
    }

    #[test]
    fn rules_differing_only_in_path_share_a_set() {
        let out = import(SAMPLE);
        assert!(out.errors.is_empty(), "{:?}", out.errors);
        assert_eq!(out.rules, 3);
        assert!(
            out.nft.contains("add set inet filter vpn_whitelist_l2 { typeof socket cgroupv2 level 2; }"),
            "{}",
            out.nft
        );
        assert!(out.nft.contains("add set inet filter vpn_whitelist_l5 { typeof socket cgroupv2 level 5; }"));
        assert!(out
            .nft
            .contains("add rule inet filter vpn.whitelist socket cgroupv2 level 2 @vpn_whitelist_l2 tcp dport 25 accept\n"));
        assert!(out.nft.contains("@vpn_whitelist_l5 tcp dport {25, 143} accept\n"));
        assert_eq!(out.nft.matches("add rule").count(), 2, "{}", out.nft);
        assert!(out.config.contains(
            "    - set: vpn_whitelist_l2\n      table: inet filter\n      level: 2\n      paths:\n        - \"system.slice/postfix.service\"   # postfix.service\n        - \"system.slice/dovecot.service\"   # dovecot.service\n"
        ), "{}", out.config);
        // The produced config is one netmgrd accepts.
        let cfg = crate::config::Config::parse(std::path::Path::new("import.yaml"), &out.config);
        assert!(cfg.is_ok(), "{:?}", cfg.err());
    }

    #[test]
    fn broken_continuations_and_rules_without_a_cgroup_are_located_errors() {
        let text = "# a.service :: add rule inet filter c \\\nadd rule inet filter c accept\n# b.service :: add rule inet filter c tcp dport 22 accept\n# c.service :: add rule inet filter c \\";
        let out = import(text);
        let lines: Vec<usize> = out.errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, vec![2, 4, 3], "{:?}", out.errors);
        assert!(out.errors[1].message.contains("end of the file"));
        assert!(out.errors[2].message.contains("no `socket cgroupv2"));
        // Plain comments and `#` lines that are not `UNIT ::` are ignored.
        assert_eq!(parse("# just a comment :: x\n## note\n").0, vec![]);
    }
}
