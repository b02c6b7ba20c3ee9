//! Ant file patterns, as Jenkins uses them (`Util.createFileSet`, Ant's `DirectoryScanner` and
//! `SelectorUtils.matchPath`), pure: no file system here.
//!
//! * A pattern list is comma-separated; each pattern is trimmed, empty ones dropped.
//! * `/` and `\` both separate segments; a pattern ending in a separator gets `**` appended.
//! * `**` matches zero or more whole segments; within a segment `*` matches zero or more
//!   characters and `?` exactly one.
//! * Matching is case-sensitive unless asked otherwise; a pattern starting at the root (`/x`)
//!   never matches the relative paths a scan produces.
//! * Ant's default excludes (version control and editor files) are [`DEFAULT_EXCLUDES`].

/// Ant 1.10's `DirectoryScanner.DEFAULTEXCLUDES`.
pub const DEFAULT_EXCLUDES: &[&str] = &[
    "**/*~",
    "**/#*#",
    "**/.#*",
    "**/%*%",
    "**/._*",
    "**/CVS",
    "**/CVS/**",
    "**/.cvsignore",
    "**/SCCS",
    "**/SCCS/**",
    "**/vssver.scc",
    "**/.svn",
    "**/.svn/**",
    "**/.git",
    "**/.git/**",
    "**/.gitattributes",
    "**/.gitignore",
    "**/.gitmodules",
    "**/.hg",
    "**/.hg/**",
    "**/.hgignore",
    "**/.hgsub",
    "**/.hgsubstate",
    "**/.hgtags",
    "**/.bzr",
    "**/.bzr/**",
    "**/.bzrignore",
    "**/.DS_Store",
];

/// One compiled pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pattern {
    /// Segments; `None` is `**`.
    segments: Vec<Option<String>>,
    /// The pattern starts at the file system root.
    rooted: bool,
}

impl Pattern {
    /// Compiles one pattern (Ant's `normalizePattern` then tokenizing).
    pub fn new(pattern: &str) -> Pattern {
        let p = pattern.replace('\\', "/");
        let rooted = p.starts_with('/');
        let mut p = p;
        if p.ends_with('/') {
            p.push_str("**");
        }
        Pattern {
            segments: p
                .split('/')
                .filter(|s| !s.is_empty())
                .map(|s| (s != "**").then(|| s.to_string()))
                .collect(),
            rooted,
        }
    }

    /// True if relative path `path` (segments separated by `/`) matches.
    pub fn matches(&self, path: &str, case_sensitive: bool) -> bool {
        if self.rooted {
            return false;
        }
        let parts: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        match_segments(&self.segments, &parts, case_sensitive)
    }

    /// True if something below directory `dir` could match (Ant's `couldHoldIncluded`): used
    /// only to skip walking directories that cannot contain a match.
    pub fn could_match_below(&self, dir: &str, case_sensitive: bool) -> bool {
        if self.rooted {
            return false;
        }
        let parts: Vec<&str> = dir.split('/').filter(|s| !s.is_empty()).collect();
        for (i, part) in parts.iter().enumerate() {
            match self.segments.get(i) {
                None => return false,
                Some(None) => return true,
                Some(Some(seg)) => {
                    if !match_segment(seg, part, case_sensitive) {
                        return false;
                    }
                }
            }
        }
        self.segments.len() > parts.len()
    }

    /// True if this pattern excludes everything under directory `dir` (`dir/**` matches).
    pub fn covers_all_below(&self, dir: &str, case_sensitive: bool) -> bool {
        matches!(self.segments.last(), Some(None))
            && self.matches(&format!("{dir}/x"), case_sensitive)
            && {
                let head = &self.segments[..self.segments.len() - 1];
                let parts: Vec<&str> = dir.split('/').filter(|s| !s.is_empty()).collect();
                match_segments(head, &parts, case_sensitive)
            }
    }
}

/// Path segments against pattern segments, `None` being `**`.
fn match_segments(pat: &[Option<String>], path: &[&str], cs: bool) -> bool {
    // Dynamic programming over (pattern index, path index): m[j] = pat[..i] matches path[..j].
    let mut m = vec![false; path.len() + 1];
    m[0] = true;
    for p in pat {
        let mut next = vec![false; path.len() + 1];
        match p {
            None => {
                let mut any = false;
                for j in 0..=path.len() {
                    any |= m[j];
                    next[j] = any;
                }
            }
            Some(seg) => {
                for j in 1..=path.len() {
                    next[j] = m[j - 1] && match_segment(seg, path[j - 1], cs);
                }
            }
        }
        m = next;
    }
    m[path.len()]
}

fn fold(c: char, cs: bool) -> char {
    if cs {
        c
    } else {
        c.to_uppercase().next().unwrap_or(c)
    }
}

/// One segment with `*` and `?` (Ant's `SelectorUtils.match`).
pub fn match_segment(pattern: &str, s: &str, cs: bool) -> bool {
    let p: Vec<char> = pattern.chars().map(|c| fold(c, cs)).collect();
    let s: Vec<char> = s.chars().map(|c| fold(c, cs)).collect();
    // Iterative wildcard matching with backtracking to the last `*`.
    let (mut i, mut j) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while j < s.len() {
        if i < p.len() && (p[i] == '?' || p[i] == s[j]) {
            i += 1;
            j += 1;
        } else if i < p.len() && p[i] == '*' {
            star = Some((i, j));
            i += 1;
        } else if let Some((si, sj)) = star {
            i = si + 1;
            j = sj + 1;
            star = Some((si, sj + 1));
        } else {
            return false;
        }
    }
    while i < p.len() && p[i] == '*' {
        i += 1;
    }
    i == p.len()
}

/// A compiled include/exclude set (a Jenkins `FileSet`).
#[derive(Clone, Debug)]
pub struct FileSet {
    includes: Vec<Pattern>,
    excludes: Vec<Pattern>,
    case_sensitive: bool,
}

/// Splits a comma-separated pattern list as `Util.createFileSet` does.
pub fn split_patterns(list: &str) -> Vec<String> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

impl FileSet {
    /// `includes` and `excludes` are comma-separated lists; no includes means everything
    /// (Ant's default `**`).
    pub fn new(
        includes: &str,
        excludes: Option<&str>,
        default_excludes: bool,
        case_sensitive: bool,
    ) -> FileSet {
        let mut inc: Vec<Pattern> = split_patterns(includes)
            .iter()
            .map(|p| Pattern::new(p))
            .collect();
        if inc.is_empty() {
            inc.push(Pattern::new("**"));
        }
        let mut exc: Vec<Pattern> = excludes
            .map(split_patterns)
            .unwrap_or_default()
            .iter()
            .map(|p| Pattern::new(p))
            .collect();
        if default_excludes {
            exc.extend(DEFAULT_EXCLUDES.iter().map(|p| Pattern::new(p)));
        }
        FileSet {
            includes: inc,
            excludes: exc,
            case_sensitive,
        }
    }

    /// True if relative path `path` is included and not excluded.
    pub fn selects(&self, path: &str) -> bool {
        self.includes
            .iter()
            .any(|p| p.matches(path, self.case_sensitive))
            && !self.excluded(path)
    }

    /// True if `path` matches an exclude pattern.
    pub fn excluded(&self, path: &str) -> bool {
        self.excludes
            .iter()
            .any(|p| p.matches(path, self.case_sensitive))
    }

    /// True if a scan must look inside directory `dir` (relative): something below could be
    /// included and not everything below is excluded.
    pub fn worth_entering(&self, dir: &str) -> bool {
        self.includes
            .iter()
            .any(|p| p.could_match_below(dir, self.case_sensitive))
            && !self
                .excludes
                .iter()
                .any(|p| p.covers_all_below(dir, self.case_sensitive))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, s: &str) -> bool {
        Pattern::new(p).matches(s, true)
    }

    /// The examples of Ant's manual ("Directory-based Tasks", Patterns).
    #[test]
    fn ants_documented_examples() {
        // "*.java" matches .java, x.java and FooBar.java, but not FooBar.xml.
        assert!(m("*.java", ".java") && m("*.java", "x.java") && m("*.java", "FooBar.java"));
        assert!(!m("*.java", "FooBar.xml"));
        // "?.java" matches x.java, A.java, but not .java or xyz.java.
        assert!(m("?.java", "x.java") && m("?.java", "A.java"));
        assert!(!m("?.java", ".java") && !m("?.java", "xyz.java"));
        // "/test/**": never a relative path; "test/**" everything under test.
        assert!(!m("/test/**", "test/a"));
        // "**/CVS/*": files directly in a CVS directory, anywhere.
        assert!(m("**/CVS/*", "CVS/Repository"));
        assert!(m("**/CVS/*", "org/apache/CVS/Entries"));
        assert!(m("**/CVS/*", "org/apache/jakarta/tools/ant/CVS/Entries"));
        assert!(!m("**/CVS/*", "org/apache/CVS/foo/bar/Entries"));
        // "org/apache/jakarta/**": everything below, and the directory itself.
        assert!(m(
            "org/apache/jakarta/**",
            "org/apache/jakarta/tools/ant/docs/index.html"
        ));
        assert!(m("org/apache/jakarta/**", "org/apache/jakarta/test.xml"));
        assert!(m("org/apache/jakarta/**", "org/apache/jakarta"));
        assert!(!m("org/apache/jakarta/**", "org/apache/xyz.java"));
        // "org/apache/**/CVS/*".
        assert!(m("org/apache/**/CVS/*", "org/apache/CVS/Entries"));
        assert!(m(
            "org/apache/**/CVS/*",
            "org/apache/jakarta/tools/ant/CVS/Entries"
        ));
        assert!(!m("org/apache/**/CVS/*", "org/apache/CVS/foo/bar/Entries"));
        // "**/test/**": anything with a test path element, including test itself.
        assert!(m("**/test/**", "test") && m("**/test/**", "a/test/b/c"));
        // A trailing slash means "**": "mypackage/test/" = "mypackage/test/**".
        assert!(m("mypackage/test/", "mypackage/test/a/b"));
        assert!(m("mypackage/test/", "mypackage/test"));
    }

    #[test]
    fn case_sensitivity_backslashes_and_double_stars() {
        assert!(!m("*.JAVA", "a.java"));
        assert!(Pattern::new("*.JAVA").matches("a.java", false));
        assert!(m("a\\b\\*.c", "a/b/x.c"));
        assert!(m("**/**/x", "x") && m("**", "a/b/c"));
        assert!(m("a/**/b/**/c", "a/b/c") && m("a/**/b/**/c", "a/x/y/b/z/c"));
        assert!(!m("a/**/b", "a/x/c"));
        assert!(match_segment("*a*b*", "xxaxxbxx", true));
        assert!(!match_segment("*a*b", "xxaxxbxxc", true));
    }

    #[test]
    fn file_sets_split_lists_and_apply_default_excludes() {
        let fs = FileSet::new(" a/** , *.txt,,", Some("a/skip/**"), true, true);
        assert!(fs.selects("a/b.c") && fs.selects("top.txt"));
        assert!(!fs.selects("a/skip/x") && !fs.selects("b/c.txt"));
        assert!(!fs.selects("a/.git/config") && !fs.selects("a/x.c~"));
        assert!(!fs.worth_entering("a/skip") && fs.worth_entering("a"));
        assert!(!fs.worth_entering("b"));
        let all = FileSet::new("", None, false, true);
        assert!(all.selects("x/.git/config"));
    }
}
