//! Classify a queue item's `why` text (rendered with `Accept-Language: en`).
//!
//! The texts come from `hudson/model/Messages.properties` and are identical from 2.222.1 to
//! current cores; quotes are U+2018/U+2019, but `'` and `"` are accepted too.

use std::collections::BTreeSet;

/// What a `why` text says about the capacity the item waits for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Why {
    /// `Waiting for next available executor on ‘X’`: X is a label expression (canonical form)
    /// or, when the label has exactly one node, that node's name.
    WaitingOn(String),
    /// `There are no nodes with the label ‘X’`: X is a label expression.
    NoNodesWithLabel(String),
    /// `All nodes of label ‘X’ are offline`: X is a label expression.
    AllNodesOffline(String),
    /// `‘X’ is offline`: the label's only node, X, is offline.
    NodeOffline(String),
    /// `Waiting for next available executor`: no label (or no agents at all).
    Unlabeled,
    /// Per-executor refusals joined with `; `. `labels` are the labels named by
    /// `‘n’ doesn’t have label ‘l’` (the item's label); `nodes` every node named.
    Composite {
        labels: BTreeSet<String>,
        nodes: BTreeSet<String>,
        truncated: bool,
    },
    /// Waiting for something other than capacity: quiet period, a build in progress,
    /// blocked by another job, shutdown.
    NotCapacity(&'static str),
    /// Anything else (a plugin's text, another language).
    Unknown,
}

fn is_quote(c: char) -> bool {
    matches!(
        c,
        '\u{2018}' | '\u{2019}' | '\'' | '"' | '\u{201c}' | '\u{201d}'
    )
}

/// `‘X’` → `X` (requires a quote at both ends).
fn unquote(s: &str) -> Option<&str> {
    let mut chars = s.chars();
    let first = chars.next()?;
    let last = s.chars().next_back()?;
    if s.chars().count() >= 2 && is_quote(first) && is_quote(last) {
        let inner = &s[first.len_utf8()..s.len() - last.len_utf8()];
        if inner.is_empty() {
            None
        } else {
            Some(inner)
        }
    } else {
        None
    }
}

const NOT_CAPACITY: &[(&str, &str)] = &[
    ("In the quiet period", "quiet-period"),
    ("Jenkins is about to shut down", "shutting-down"),
    ("A build is already in progress", "build-in-progress"),
    ("Blocked by ", "blocked"),
    ("Upstream project ", "upstream-building"),
    ("Downstream project ", "downstream-building"),
    ("Stopping ", "stopping"),
    ("Must run on ", "pinned"),
    ("Waiting for the completion of", "blocked"),
    ("Finished waiting", "finished"),
];

pub fn classify(why: &str) -> Why {
    let w = why.trim();
    if let Some(rest) = w.strip_prefix("Waiting for next available executor on ") {
        if let Some(x) = unquote(rest.trim()) {
            return Why::WaitingOn(x.to_string());
        }
        return Why::Unknown;
    }
    if w == "Waiting for next available executor" {
        return Why::Unlabeled;
    }
    if let Some(rest) = w.strip_prefix("There are no nodes with the label ") {
        return unquote(rest.trim()).map_or(Why::Unknown, |x| Why::NoNodesWithLabel(x.into()));
    }
    if let Some(rest) = w
        .strip_prefix("All nodes of label ")
        .and_then(|r| r.strip_suffix(" are offline"))
    {
        return unquote(rest.trim()).map_or(Why::Unknown, |x| Why::AllNodesOffline(x.into()));
    }
    if w.starts_with("Build #") && w.contains(" is already in progress") {
        return Why::NotCapacity("build-in-progress");
    }
    for (prefix, reason) in NOT_CAPACITY {
        if w.starts_with(prefix) {
            return Why::NotCapacity(reason);
        }
    }
    // One refusal message alone, or several joined by "; ".
    let pieces: Vec<&str> = w.split("; ").collect();
    if pieces.len() == 1 {
        if let Some(rest) = w.strip_suffix(" is offline") {
            if let Some(n) = unquote(rest.trim()) {
                return Why::NodeOffline(n.to_string());
            }
        }
    }
    let mut labels = BTreeSet::new();
    let mut nodes = BTreeSet::new();
    let mut truncated = false;
    for p in &pieces {
        let p = p.trim();
        if p.starts_with("... and ") && p.ends_with(" more") {
            truncated = true;
            continue;
        }
        match refusal(p) {
            Some((node, label)) => {
                nodes.insert(node.to_string());
                if let Some(l) = label {
                    labels.insert(l.to_string());
                }
            }
            None => return Why::Unknown,
        }
    }
    Why::Composite {
        labels,
        nodes,
        truncated,
    }
}

/// One `Node.canTake` refusal: returns (node, label named by "doesn't have label").
fn refusal(p: &str) -> Option<(&str, Option<&str>)> {
    for sep in [" doesn\u{2019}t have label ", " doesn't have label "] {
        if let Some(i) = p.find(sep) {
            let node = unquote(p[..i].trim())?;
            let label = unquote(p[i + sep.len()..].trim())?;
            return Some((node, Some(label)));
        }
    }
    if let Some(i) = p.find(" lacks permission to run on ") {
        return Some((unquote(p[..i].trim())?, None));
    }
    for suffix in [
        " is reserved for jobs with matching label expression",
        " is not accepting tasks",
        " is offline",
    ] {
        if let Some(rest) = p.strip_suffix(suffix) {
            return Some((unquote(rest.trim())?, None));
        }
    }
    None
}

/// The node names a `why` text mentions (used to find queue items pinned to a node before
/// retiring it). For `WaitingOn`/`NoNodesWithLabel`/`AllNodesOffline` the label text itself
/// is returned too, since a label can be a node's self-label.
pub fn mentioned_names(why: &Why) -> Vec<&str> {
    match why {
        Why::WaitingOn(x)
        | Why::NoNodesWithLabel(x)
        | Why::AllNodesOffline(x)
        | Why::NodeOffline(x) => {
            vec![x.as_str()]
        }
        Why::Composite { nodes, .. } => nodes.iter().map(String::as_str).collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn comp(labels: &[&str], nodes: &[&str], truncated: bool) -> Why {
        Why::Composite {
            labels: labels.iter().map(|s| s.to_string()).collect(),
            nodes: nodes.iter().map(|s| s.to_string()).collect(),
            truncated,
        }
    }

    #[test]
    fn message_table() {
        let cases: Vec<(&str, Why)> = vec![
            ("Waiting for next available executor on \u{2018}linux&&x64\u{2019}", Why::WaitingOn("linux&&x64".into())),
            ("Waiting for next available executor on 'linux'", Why::WaitingOn("linux".into())),
            ("Waiting for next available executor on \u{2018}nectr-linux-0a1b\u{2019}", Why::WaitingOn("nectr-linux-0a1b".into())),
            ("Waiting for next available executor on \u{2018}\"a b\"||c\u{2019}", Why::WaitingOn("\"a b\"||c".into())),
            ("Waiting for next available executor", Why::Unlabeled),
            ("There are no nodes with the label \u{2018}gpu\u{2019}", Why::NoNodesWithLabel("gpu".into())),
            ("All nodes of label \u{2018}linux&&docker\u{2019} are offline", Why::AllNodesOffline("linux&&docker".into())),
            ("\u{2018}nectr-linux-0a1b\u{2019} is offline", Why::NodeOffline("nectr-linux-0a1b".into())),
            ("In the quiet period. Expires in 4.9 sec", Why::NotCapacity("quiet-period")),
            ("Build #475 is already in progress (ETA: 23 min)", Why::NotCapacity("build-in-progress")),
            ("Build #12 is already in progress", Why::NotCapacity("build-in-progress")),
            ("A build is already in progress", Why::NotCapacity("build-in-progress")),
            ("Blocked by \u{2018}deploy\u{2019}", Why::NotCapacity("blocked")),
            ("Upstream project \u{2018}lib\u{2019} is already building", Why::NotCapacity("upstream-building")),
            ("Downstream project \u{2018}app\u{2019} is already building", Why::NotCapacity("downstream-building")),
            ("Jenkins is about to shut down", Why::NotCapacity("shutting-down")),
            ("Warte auf den n\u{e4}chsten freien Build-Prozessor", Why::Unknown),
            ("Waiting for next available executor on linux", Why::Unknown),
            (
                "\u{2018}built-in\u{2019} doesn\u{2019}t have label \u{2018}linux&&x64\u{2019}; \u{2018}static-1\u{2019} is offline",
                comp(&["linux&&x64"], &["built-in", "static-1"], false),
            ),
            (
                "\u{2018}a\u{2019} doesn't have label 'gpu'",
                comp(&["gpu"], &["a"], false),
            ),
            (
                "\u{2018}a\u{2019} is reserved for jobs with matching label expression; \u{2018}b\u{2019} is not accepting tasks; \u{2018}c\u{2019} lacks permission to run on \u{2018}job\u{2019}; ... and 3 more",
                comp(&[], &["a", "b", "c"], true),
            ),
            ("\u{2018}a\u{2019} is reserved for jobs with matching label expression; something else", Why::Unknown),
        ];
        for (text, want) in cases {
            assert_eq!(classify(text), want, "{text}");
        }
    }

    #[test]
    fn mentioned() {
        assert_eq!(
            mentioned_names(&classify("\u{2018}n1\u{2019} is offline")),
            vec!["n1"]
        );
        assert!(mentioned_names(&classify("Waiting for next available executor")).is_empty());
    }
}
