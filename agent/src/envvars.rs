//! Jenkins' environment semantics (`hudson.EnvVars`, `Util.replaceMacro`), pure: what a build
//! process gets when the controller launches it with overrides.
//!
//! * Keys are case-insensitive (`String.CASE_INSENSITIVE_ORDER`); a key keeps the spelling it
//!   was first put with.
//! * `override(KEY, "")` removes the key; `override("PATH+MAVEN", v)` prepends `v` and `:` to
//!   `PATH` (or sets it).
//! * Overrides are expanded (`$NAME`, `${NAME}`, `$$`) against the map built so far, applied in
//!   the order of Jenkins' `OverrideOrderCalculator` (a variable after the ones it refers to,
//!   cycles cut as Jenkins cuts them), `NAME+X` ones last.

use std::collections::{BTreeMap, HashSet};

/// The ordering key of `String.CASE_INSENSITIVE_ORDER`: each UTF-16 unit upper- then
/// lower-cased.
fn fold(s: &str) -> Vec<u16> {
    s.encode_utf16()
        .map(|u| {
            char::from_u32(u as u32)
                .map(|c| {
                    let up = c.to_uppercase().next().unwrap_or(c);
                    let low = up.to_lowercase().next().unwrap_or(up);
                    low as u32 as u16
                })
                .unwrap_or(u)
        })
        .collect()
}

/// A case-insensitive, sorted environment (`hudson.EnvVars`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EnvVars {
    map: BTreeMap<Vec<u16>, (String, String)>,
}

impl EnvVars {
    /// An empty environment.
    pub fn new() -> Self {
        EnvVars::default()
    }

    /// An environment holding `pairs` (later ones win).
    pub fn from_pairs<I: IntoIterator<Item = (String, String)>>(pairs: I) -> Self {
        let mut e = EnvVars::new();
        for (k, v) in pairs {
            e.put(&k, &v);
        }
        e
    }

    /// `KEY=VALUE` strings (a missing `=` means an empty value, as Jenkins' `inherit` would
    /// fail: the entry is skipped).
    pub fn from_assignments(env: &[String]) -> Self {
        EnvVars::from_pairs(env.iter().filter_map(|e| {
            let (k, v) = e.split_once('=')?;
            Some((k.to_string(), v.to_string()))
        }))
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.map.get(&fold(key)).map(|(_, v)| v.as_str())
    }

    /// True if `key` is set.
    pub fn contains(&self, key: &str) -> bool {
        self.map.contains_key(&fold(key))
    }

    /// Sets `key` (an existing key keeps its spelling, as `TreeMap.put` does).
    pub fn put(&mut self, key: &str, value: &str) {
        let k = fold(key);
        match self.map.get_mut(&k) {
            Some(e) => e.1 = value.to_string(),
            None => {
                self.map.insert(k, (key.to_string(), value.to_string()));
            }
        }
    }

    /// Removes `key`.
    pub fn remove(&mut self, key: &str) {
        self.map.remove(&fold(key));
    }

    /// Entries in Jenkins' (case-insensitive) order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.map.values().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// `EnvVars.override`: an empty value removes the key; `NAME+X` prepends to `NAME`.
    pub fn override_one(&mut self, key: &str, value: &str) {
        if value.is_empty() {
            self.remove(key);
            return;
        }
        if let Some(idx) = key.find('+').filter(|i| *i > 0) {
            let real = &key[..idx];
            let v = match self.get(real) {
                None => value.to_string(),
                Some(old) => format!("{value}:{old}"),
            };
            self.put(real, &v);
            return;
        }
        self.put(key, value);
    }

    /// `Util.replaceMacro(s, this)`: `$NAME`, `${NAME}` replaced when defined, `$$` → `$`.
    pub fn expand(&self, s: &str) -> String {
        replace_macro(s, &mut |name| self.get(name).map(str::to_string))
    }

    /// `EnvVars.overrideExpandingAll`: the overrides expanded and applied in Jenkins' order.
    pub fn override_expanding_all(&mut self, overrides: &EnvVars) {
        for key in override_order(self, overrides) {
            let raw = overrides.get(&key).unwrap_or_default().to_string();
            let v = self.expand(&raw);
            self.override_one(&key, &v);
        }
    }
}

/// `Util.replaceMacro` with `resolve` giving a variable's value (`None`: left as it is).
pub fn replace_macro(s: &str, resolve: &mut dyn FnMut(&str) -> Option<String>) -> String {
    let mut s = s.to_string();
    let mut idx = 0;
    while let Some((start, end, key)) = find_variable(&s, idx) {
        let value = if key == "$" {
            Some("$".to_string())
        } else {
            resolve(key.trim_start_matches('{').trim_end_matches('}'))
        };
        match value {
            None => idx = end,
            Some(v) => {
                s = format!("{}{}{}", &s[..start], v, &s[end..]);
                idx = start + v.len();
            }
        }
    }
    s
}

/// The next match of `\$([A-Za-z0-9_]+|\{[A-Za-z0-9_.]+\}|\$)` at or after byte `from`:
/// (start, end, text after the `$`).
fn find_variable(s: &str, from: usize) -> Option<(usize, usize, &str)> {
    let b = s.as_bytes();
    let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let mut i = from;
    while i < b.len() {
        if b[i] == b'$' && i + 1 < b.len() {
            let j = i + 1;
            if b[j] == b'$' {
                return Some((i, j + 1, &s[j..j + 1]));
            }
            if word(b[j]) {
                let mut k = j;
                while k < b.len() && word(b[k]) {
                    k += 1;
                }
                return Some((i, k, &s[j..k]));
            }
            if b[j] == b'{' {
                let mut k = j + 1;
                while k < b.len() && (word(b[k]) || b[k] == b'.') {
                    k += 1;
                }
                if k > j + 1 && k < b.len() && b[k] == b'}' {
                    return Some((i, k + 1, &s[j..k + 1]));
                }
            }
        }
        i += 1;
    }
    None
}

/// `EnvVars.OverrideOrderCalculator`: the order overrides are applied in.
fn override_order(target: &EnvVars, overrides: &EnvVars) -> Vec<String> {
    // Edges: variable -> the variables its value refers to (itself excluded), keyed
    // case-insensitively and iterated in that order, as Jenkins' TreeMap/TreeSet are.
    let mut refs: Graph = BTreeMap::new();
    let mut extending = Vec::new();
    for (key, value) in overrides.iter() {
        if key.find('+').is_some_and(|i| i > 0) {
            extending.push(key.to_string());
            continue;
        }
        let mut referred = BTreeMap::new();
        replace_macro(value, &mut |name| {
            referred.insert(fold(name), name.to_string());
            Some(String::new())
        });
        referred.remove(&fold(key));
        refs.insert(fold(key), (key.to_string(), referred));
    }
    let sorted = loop {
        match topological(&refs) {
            Ok(sorted) => break sorted,
            Err(cycle) => cut_cycle(&mut refs, target, &cycle),
        }
    };
    let mut ordered: Vec<String> = Vec::new();
    let mut seen = HashSet::new();
    for name in sorted.iter().rev() {
        if overrides.contains(name) && seen.insert(fold(name)) {
            ordered.push(overrides_key(overrides, name));
        }
    }
    ordered.reverse();
    ordered.extend(extending);
    ordered
}

fn overrides_key(overrides: &EnvVars, name: &str) -> String {
    overrides
        .map
        .get(&fold(name))
        .map_or_else(|| name.to_string(), |(k, _)| k.clone())
}

type Graph = BTreeMap<Vec<u16>, (String, BTreeMap<Vec<u16>, String>)>;

/// `CyclicGraphDetector`: depth-first post-order over `refs` (referees before referrers), or
/// the first cycle found as `[q, …, q]`. Like Jenkins, visited sets compare names exactly.
fn topological(refs: &Graph) -> Result<Vec<String>, Vec<String>> {
    struct Walk<'g> {
        refs: &'g Graph,
        visited: HashSet<String>,
        visiting: HashSet<String>,
        path: Vec<String>,
        order: Vec<String>,
    }
    impl Walk<'_> {
        fn visit(&mut self, p: &str) -> Result<(), Vec<String>> {
            if !self.visited.insert(p.to_string()) {
                return Ok(());
            }
            self.visiting.insert(p.to_string());
            self.path.push(p.to_string());
            let edges: Vec<String> = self
                .refs
                .get(&fold(p))
                .map(|(_, r)| r.values().cloned().collect())
                .unwrap_or_default();
            for q in edges {
                if self.visiting.contains(&q) {
                    let i = self.path.iter().position(|x| *x == q).unwrap_or(0);
                    let mut cycle = self.path[i..].to_vec();
                    cycle.push(q);
                    return Err(cycle);
                }
                self.visit(&q)?;
            }
            self.visiting.remove(p);
            self.path.pop();
            self.order.push(p.to_string());
            Ok(())
        }
    }
    let mut w = Walk {
        refs,
        visited: HashSet::new(),
        visiting: HashSet::new(),
        path: Vec::new(),
        order: Vec::new(),
    };
    let names: Vec<String> = refs.values().map(|(k, _)| k.clone()).collect();
    for n in names {
        w.visit(&n)?;
    }
    Ok(w.order)
}

/// `cutCycle`: cut at the first variable of the cycle that already exists in the target,
/// else at the first one.
fn cut_cycle(refs: &mut Graph, target: &EnvVars, cycle: &[String]) {
    let referee = cycle
        .iter()
        .find(|v| target.contains(v))
        .or(cycle.first())
        .cloned()
        .unwrap_or_default();
    let idx = cycle.iter().rposition(|v| *v == referee).unwrap_or(0);
    let referrer = if idx > 0 { &cycle[idx - 1] } else { &cycle[0] };
    tracing::warn!(
        "Cyclic reference detected: {}; cut the reference {referrer} -> {referee}",
        cycle.join(" -> ")
    );
    if let Some((_, r)) = refs.get_mut(&fold(referrer)) {
        r.remove(&fold(&referee));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> EnvVars {
        EnvVars::from_pairs(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())))
    }

    #[test]
    fn keys_are_case_insensitive_and_keep_their_first_spelling() {
        let mut e = env(&[("Path", "/bin")]);
        e.put("PATH", "/usr/bin");
        assert_eq!(e.get("path"), Some("/usr/bin"));
        assert_eq!(e.iter().collect::<Vec<_>>(), vec![("Path", "/usr/bin")]);
    }

    #[test]
    fn macros_expand_like_util_replace_macro() {
        let e = env(&[("A", "x"), ("B.C", "dot")]);
        assert_eq!(
            e.expand("$A-${A}-$$A-$U-${U}-${B.C}-$"),
            "x-x-$A-$U-${U}-dot-$"
        );
        assert_eq!(e.expand("$$$$"), "$$");
        assert_eq!(e.expand("a${}b"), "a${}b");
    }

    #[test]
    fn override_removes_on_empty_and_prepends_for_plus_keys() {
        let mut e = env(&[("PATH", "/bin"), ("GONE", "1")]);
        e.override_one("GONE", "");
        e.override_one("PATH+TOOL", "/opt/tool/bin");
        e.override_one("NEW+X", "/x");
        assert_eq!(e.get("GONE"), None);
        assert_eq!(e.get("PATH"), Some("/opt/tool/bin:/bin"));
        assert_eq!(e.get("NEW"), Some("/x"));
    }

    #[test]
    fn overrides_apply_after_what_they_refer_to() {
        let mut e = env(&[("HOME", "/home/j")]);
        // B refers to A: A must be applied first even though B sorts first.
        let o = env(&[("A", "${HOME}/a"), ("B", "$A/b"), ("PATH+Z", "$B")]);
        e.override_expanding_all(&o);
        assert_eq!(e.get("A"), Some("/home/j/a"));
        assert_eq!(e.get("B"), Some("/home/j/a/b"));
        assert_eq!(e.get("PATH"), Some("/home/j/a/b"));
    }

    #[test]
    fn self_reference_uses_the_previous_value_and_cycles_are_cut() {
        let mut e = env(&[("PATH", "/usr/bin")]);
        let o = env(&[
            ("PATH", "/opt/bin:${PATH1}"),
            ("PATH1", "/usr/local/bin:${PATH}"),
        ]);
        e.override_expanding_all(&o);
        // Jenkins' own example: the reference PATH1 -> PATH (an existing variable) is cut,
        // so PATH1 is applied first against the old PATH.
        assert_eq!(e.get("PATH1"), Some("/usr/local/bin:/usr/bin"));
        assert_eq!(e.get("PATH"), Some("/opt/bin:/usr/local/bin:/usr/bin"));
        let mut e = env(&[("X", "1")]);
        e.override_expanding_all(&env(&[("X", "${X}2")]));
        assert_eq!(e.get("X"), Some("12"));
    }

    #[test]
    fn doubled_dollars_survive_one_expansion() {
        // durable-task doubles every $ of the build environment before sending it.
        let mut e = EnvVars::new();
        e.override_expanding_all(&env(&[("PS", "a$$b"), ("Q", "$$HOME")]));
        assert_eq!(e.get("PS"), Some("a$b"));
        assert_eq!(e.get("Q"), Some("$HOME"));
    }
}
