//! Whether two listener rules can match one request: ALB's host-header and path-pattern values are
//! globs (`*` any run of characters, `?` one character), a rule matches when every condition it has
//! matches (one of a condition's values suffices), and a rule without a host or path condition
//! matches every host or path. A new rule that can take requests another owner's rule serves is
//! refused (`RuleOverlap`): the priority decides which one wins, and the automatic priority (the
//! lowest free number, the highest precedence) would silently steal the other's traffic.

use super::plan::ObservedRule;

/// Some string matches both globs `a` and `b`.
pub fn globs_intersect(a: &[char], b: &[char]) -> bool {
    // Reachability over the product of the two patterns' positions: a literal meets an equal
    // literal or `?`, and a `*` either ends or takes one character of the other side.
    let (n, m) = (a.len(), b.len());
    let mut seen = vec![false; (n + 1) * (m + 1)];
    let mut stack = vec![(0usize, 0usize)];
    while let Some((i, j)) = stack.pop() {
        let Some(cell) = seen.get_mut(i * (m + 1) + j) else { continue };
        if *cell {
            continue;
        }
        *cell = true;
        if i == n && j == m {
            return true;
        }
        let (x, y) = (a.get(i).copied(), b.get(j).copied());
        if x == Some('*') {
            stack.push((i + 1, j));
            if y.is_some() && y != Some('*') {
                stack.push((i, j + 1));
            }
        }
        if y == Some('*') {
            stack.push((i, j + 1));
            if x.is_some() && x != Some('*') {
                stack.push((i + 1, j));
            }
        }
        if let (Some(x), Some(y)) = (x, y)
            && x != '*'
            && y != '*'
            && (x == y || x == '?' || y == '?')
        {
            stack.push((i + 1, j + 1));
        }
    }
    false
}

/// Some value of `a` and some value of `b` match one string; an empty list (no such condition)
/// matches everything. Host headers compare without case.
fn values_intersect(a: &[String], b: &[String], fold_case: bool) -> bool {
    if a.is_empty() || b.is_empty() {
        return true;
    }
    let chars = |s: &String| -> Vec<char> {
        if fold_case { s.to_ascii_lowercase().chars().collect() } else { s.chars().collect() }
    };
    a.iter().any(|x| b.iter().any(|y| globs_intersect(&chars(x), &chars(y))))
}

/// Another owner's rule (not the listener's default) that a rule with `paths` and `hosts` can take
/// requests from.
pub fn overlapping<'a>(paths: &[String], hosts: &[String], rules: &'a [ObservedRule]) -> Option<&'a ObservedRule> {
    rules
        .iter()
        .filter(|r| !r.ours && r.priority.is_some())
        .find(|r| values_intersect(hosts, &r.host_headers, true) && values_intersect(paths, &r.path_patterns, false))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meet(a: &str, b: &str) -> bool {
        let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
        let one = globs_intersect(&a, &b);
        assert_eq!(one, globs_intersect(&b, &a), "symmetric: {a:?} {b:?}");
        one
    }

    #[test]
    fn globs_meet_when_one_string_matches_both() {
        for (a, b) in [
            ("/a/*", "/a/b/*"),
            ("/a/*", "/a/x"),
            ("/*", "/legacy/*"),
            ("/a?c", "/abc"),
            ("*.example.com", "api.example.com"),
            ("*", ""),
            ("/a*b", "/a*c*b"),
            ("/x/*/y", "/x/1/*"),
            ("", ""),
        ] {
            assert!(meet(a, b), "{a:?} and {b:?} meet");
        }
        for (a, b) in [
            ("/a/*", "/b/*"),
            ("/a0/*", "/a1/*"),
            ("/a?c", "/abd"),
            ("/a", "/a/"),
            ("*.example.com", "example.org"),
            ("/x/*", "/y*"),
            ("?", ""),
        ] {
            assert!(!meet(a, b), "{a:?} and {b:?} never meet");
        }
    }

    fn rule(paths: &[&str], hosts: &[&str], ours: bool) -> ObservedRule {
        ObservedRule {
            arn: format!("arn:{paths:?}{hosts:?}"),
            priority: Some(10),
            path_patterns: paths.iter().map(|s| s.to_string()).collect(),
            host_headers: hosts.iter().map(|s| s.to_string()).collect(),
            ours,
            ..Default::default()
        }
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_rule_overlaps_another_owners_when_both_its_hosts_and_its_paths_can_match() {
        let rules = [rule(&["/legacy/*"], &[], false), rule(&["/*"], &["Web.Example.com"], false)];
        assert!(overlapping(&strings(&["/app/*"]), &[], &rules[..1]).is_none());
        assert!(overlapping(&strings(&["/*"]), &[], &rules[..1]).is_some(), "a catch-all takes /legacy/");
        assert!(overlapping(&[], &strings(&["api.example.com"]), &rules[..1]).is_some(), "no path condition");
        assert!(overlapping(&strings(&["/x"]), &strings(&["web.example.com"]), &rules).is_some(), "host case folds");
        assert!(overlapping(&strings(&["/x"]), &strings(&["api.example.com"]), &rules[1..]).is_none());
        let mine = [rule(&["/*"], &[], true)];
        assert!(overlapping(&strings(&["/*"]), &[], &mine).is_none(), "our own rule is not another owner's");
        let default = [ObservedRule { priority: None, ..rule(&[], &[], false) }];
        assert!(overlapping(&strings(&["/*"]), &[], &default).is_none(), "the default rule is not a rule to overlap");
    }
}
