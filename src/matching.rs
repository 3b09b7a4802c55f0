//! Which containers a docker set takes: labels, name globs, networks, compose project. Pure.

use crate::config::ContainerMatch;
use crate::wire::docker::Container;

/// `*` matches any run of characters, `?` any one character; everything else literally.
pub fn glob(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    // Iterative matcher with one backtrack point for the last `*`.
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// True when the container meets every criterion that is given.
pub fn matches(m: &ContainerMatch, c: &Container) -> bool {
    let labels_ok = m.labels.0.iter().all(|(k, v)| match (c.labels.get(k), v) {
        (Some(have), Some(want)) => have == want,
        (Some(_), None) => true,
        (None, _) => false,
    });
    let names_ok = m.names.is_empty() || m.names.iter().any(|g| glob(g, &c.name));
    let networks_ok = m.networks.is_empty() || m.networks.iter().any(|n| c.networks.contains_key(n));
    let project_ok = m.compose_project.as_deref().is_none_or(|p| c.compose_project() == Some(p));
    labels_ok && names_ok && networks_ok && project_ok
}

/// The networks whose addresses a matching container contributes.
pub fn networks<'a>(
    m: &'a ContainerMatch,
    c: &'a Container,
) -> impl Iterator<Item = &'a crate::wire::docker::NetAddrs> + 'a {
    c.networks.iter().filter(|(n, _)| m.networks.is_empty() || m.networks.contains(n)).map(|(_, a)| a)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::LabelMatch;
    use crate::wire::docker::NetAddrs;
    use std::collections::BTreeMap;

    #[test]
    fn globs() {
        assert!(glob("web-*", "web-1"));
        assert!(glob("*", ""));
        assert!(glob("w?b*x", "wXbYYx"));
        assert!(glob("*a*b", "xxaxxb"));
        assert!(!glob("web-*", "db-1"));
        assert!(!glob("a?", "a"));
        assert!(glob("exact", "exact"));
        assert!(!glob("exact", "exactly"));
    }

    fn container() -> Container {
        let mut labels = BTreeMap::new();
        labels.insert("app".to_string(), "web".to_string());
        labels.insert("com.docker.compose.project".to_string(), "shop".to_string());
        let mut networks = BTreeMap::new();
        networks.insert("front".to_string(), NetAddrs::default());
        networks.insert("back".to_string(), NetAddrs::default());
        Container {
            id: "abc".into(),
            name: "shop-web-1".into(),
            labels,
            networks,
            ports: vec![],
            active: true,
            pid: 0,
        }
    }

    #[test]
    fn every_criterion_must_hold() {
        let c = container();
        let mut m = ContainerMatch::default();
        assert!(matches(&m, &c), "no criteria: everything matches");
        m.labels = LabelMatch(vec![("app".into(), Some("web".into()))]);
        m.names = vec!["shop-*".into()];
        m.networks = vec!["front".into(), "other".into()];
        m.compose_project = Some("shop".into());
        assert!(matches(&m, &c));
        assert_eq!(networks(&m, &c).count(), 1, "only the listed networks' addresses");
        let mut wrong = m.clone();
        wrong.labels = LabelMatch(vec![("app".into(), Some("db".into()))]);
        assert!(!matches(&wrong, &c));
        let mut wrong = m.clone();
        wrong.labels = LabelMatch(vec![("tier".into(), None)]);
        assert!(!matches(&wrong, &c));
        let mut wrong = m.clone();
        wrong.compose_project = Some("blog".into());
        assert!(!matches(&wrong, &c));
        let mut wrong = m;
        wrong.networks = vec!["other".into()];
        assert!(!matches(&wrong, &c));
    }
}
