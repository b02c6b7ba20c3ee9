//! Which files a push sends, and under which keys.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use crate::Failure;

/// One file to push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    /// The file on disk.
    pub file: PathBuf,
    /// Its path relative to the base, with `/` separators (`{path}`).
    pub rel: String,
    /// The object key.
    pub key: String,
}

/// Expands `{NAME}` (the environment variable NAME), `{{` and `}}` in `template`, with the
/// extra placeholders in `extra` (`path`, `name`) taking precedence over the environment.
/// An unset or empty variable is an error naming it.
pub fn expand(
    template: &str,
    extra: &[(&str, &str)],
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<String, String> {
    let mut out = String::with_capacity(template.len() + 32);
    let mut rest = template;
    while let Some(i) = rest.find(['{', '}']) {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if let Some(t) = tail.strip_prefix("{{") {
            out.push('{');
            rest = t;
            continue;
        }
        if let Some(t) = tail.strip_prefix("}}") {
            out.push('}');
            rest = t;
            continue;
        }
        if tail.starts_with('}') {
            return Err(format!(
                "template {template:?}: a lone '}}' (write }}}} for a literal brace)"
            ));
        }
        let Some(end) = tail.find('}') else {
            return Err(format!("template {template:?}: '{{' without its '}}'"));
        };
        let name = &tail[1..end];
        let valid = !name.is_empty()
            && !name.starts_with(|c: char| c.is_ascii_digit())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(format!(
                "template {template:?}: {{{name}}} is not a placeholder: use {{path}}, {{name}} or {{VARIABLE}} (letters, digits, _)"
            ));
        }
        match extra.iter().find(|(k, _)| *k == name) {
            Some((_, v)) => out.push_str(v),
            None => match env(name) {
                Some(v) if !v.is_empty() => out.push_str(&v),
                _ => {
                    return Err(format!(
                        "the key template {template:?} uses {{{name}}}, but the environment variable {name} is not set{}",
                        if matches!(name, "JOB_NAME" | "BUILD_NUMBER") {
                            " (Jenkins sets it in a build; outside one, give --key)"
                        } else {
                            ""
                        }
                    ))
                }
            },
        }
        rest = &tail[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Checks that `key` is a usable S3 key: not empty, at most 1024 bytes, no leading `/`, no
/// empty, `.` or `..` segment (S3 would keep them, but every tool that maps keys to paths
/// trips over them).
pub fn check_key(key: &str) -> Result<(), String> {
    if key.is_empty() {
        return Err("the key is empty".into());
    }
    if key.len() > 1024 {
        return Err(format!(
            "the key is {} bytes long; S3 allows 1024: {key:.80}…",
            key.len()
        ));
    }
    if key
        .split('/')
        .any(|s| s.is_empty() || s == "." || s == "..")
    {
        return Err(format!(
            "the key {key:?} has an empty, . or .. segment (a leading, trailing or double /?)"
        ));
    }
    if key.chars().any(|c| c.is_control()) {
        return Err(format!("the key {key:?} contains a control character"));
    }
    Ok(())
}

/// True if `s` has a glob metacharacter.
pub fn is_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// The files `patterns` name, in order, each once: an existing path is taken as it is (a
/// directory stands for every file below it), anything else is a glob pattern. A pattern
/// that matches nothing is an error unless `allow_empty`.
pub fn find_files(patterns: &[String], allow_empty: bool) -> Result<Vec<PathBuf>, Failure> {
    let mut out = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let opts = glob::MatchOptions {
        case_sensitive: true,
        require_literal_separator: true,
        require_literal_leading_dot: false,
    };
    for pattern in patterns {
        let mut matched = Vec::new();
        let literal = Path::new(pattern);
        if literal.exists() || !is_glob(pattern) {
            matched.push(literal.to_path_buf());
        } else {
            let paths = glob::glob_with(pattern, opts)
                .map_err(|e| Failure::Usage(format!("bad pattern {pattern:?}: {e}")))?;
            for p in paths {
                let p = p.map_err(|e| Failure::Failed(format!("{pattern}: {e}")))?;
                matched.push(p);
            }
        }
        let mut files = Vec::new();
        for m in matched {
            collect(&m, &mut files)?;
        }
        if files.is_empty() && !allow_empty {
            return Err(Failure::Usage(format!(
                "no file matches {pattern:?} (in {}); nothing was pushed",
                std::env::current_dir()
                    .map(|d| d.display().to_string())
                    .unwrap_or_else(|_| "the current directory".into())
            )));
        }
        for f in files {
            if seen.insert(f.clone()) {
                out.push(f);
            }
        }
    }
    Ok(out)
}

/// `path` if it is a file, every file below it (sorted) if it is a directory.
fn collect(path: &Path, out: &mut Vec<PathBuf>) -> Result<(), Failure> {
    let meta = std::fs::metadata(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            Failure::Usage(format!("{}: no such file or directory", path.display()))
        } else {
            Failure::Failed(format!("{}: {e}", path.display()))
        }
    })?;
    if meta.is_file() {
        out.push(path.to_path_buf());
        return Ok(());
    }
    if !meta.is_dir() {
        return Err(Failure::Usage(format!(
            "{} is neither a file nor a directory",
            path.display()
        )));
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(|e| Failure::Failed(format!("{}: {e}", path.display())))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .map_err(|e| Failure::Failed(format!("{}: {e}", path.display())))?;
    entries.sort();
    for e in entries {
        collect(&e, out)?;
    }
    Ok(())
}

/// `file` relative to `base` with `/` separators, both taken lexically after making them
/// absolute against `cwd` (no symlinks resolved, so a link inside the workspace keeps its
/// name).
pub fn relative(file: &Path, base: &Path, cwd: &Path) -> Result<String, String> {
    let file = normalize(&cwd.join(file));
    let base = normalize(&cwd.join(base));
    let rel = file.strip_prefix(&base).map_err(|_| {
        format!(
            "{} is outside the base directory {}: give --base, or a --key without {{path}}",
            file.display(),
            base.display()
        )
    })?;
    let parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.is_empty() {
        return Err(format!("{} is the base directory itself", file.display()));
    }
    Ok(parts.join("/"))
}

fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// The keys of `files` under `template`; two files with the same key are an error.
pub fn plan(
    files: &[PathBuf],
    template: &str,
    base: &Path,
    cwd: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<Planned>, Failure> {
    let mut out = Vec::with_capacity(files.len());
    let mut keys: BTreeMap<String, PathBuf> = BTreeMap::new();
    let uses_path = template.contains("{path}");
    for f in files {
        let rel = if uses_path {
            relative(f, base, cwd).map_err(Failure::Usage)?
        } else {
            relative(f, base, cwd).unwrap_or_default()
        };
        let name = f
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let key =
            expand(template, &[("path", &rel), ("name", &name)], env).map_err(Failure::Usage)?;
        check_key(&key).map_err(|e| Failure::Usage(format!("{}: {e}", f.display())))?;
        if let Some(other) = keys.insert(key.clone(), f.clone()) {
            return Err(Failure::Usage(format!(
                "{} and {} would both be pushed to the key {key:?}: use {{path}} in --key",
                other.display(),
                f.display()
            )));
        }
        out.push(Planned {
            file: f.clone(),
            rel,
            key,
        });
    }
    Ok(out)
}

/// The part of a key pattern before its first glob metacharacter, and the directory prefix
/// (up to and including the last `/` of that part), below which fetched files keep their
/// path.
pub fn literal_prefix(pattern: &str) -> (&str, &str) {
    let lit = match pattern.find(['*', '?', '[']) {
        Some(i) => &pattern[..i],
        None => pattern,
    };
    let dir = match lit.rfind('/') {
        Some(i) => &lit[..=i],
        None => "",
    };
    (lit, dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(k: &str) -> Option<String> {
        match k {
            "JOB_NAME" => Some("folder/app".into()),
            "BUILD_NUMBER" => Some("42".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn default_template() {
        let k = expand(
            crate::cli::DEFAULT_KEY,
            &[("path", "dist/a.tar.gz"), ("name", "a.tar.gz")],
            &env,
        )
        .unwrap();
        assert_eq!(k, "folder/app/42/dist/a.tar.gz");
    }

    #[test]
    fn braces_and_errors() {
        assert_eq!(
            expand("{{x}}/{name}", &[("name", "n")], &env).unwrap(),
            "{x}/n"
        );
        let e = expand("{JOB_NAME}/{BUILD_ID}", &[], &env).unwrap_err();
        assert!(e.contains("BUILD_ID is not set"), "{e}");
        let e = expand("{BUILD_NUMBER}", &[], &|_| None).unwrap_err();
        assert!(e.contains("give --key"), "{e}");
        assert!(expand("{EMPTY}", &[], &env).unwrap_err().contains("EMPTY"));
        assert!(expand("{a-b}", &[], &env)
            .unwrap_err()
            .contains("not a placeholder"));
        assert!(expand("{open", &[], &env).unwrap_err().contains("without"));
        assert!(expand("x}", &[], &env).unwrap_err().contains("lone"));
        assert!(expand("{1X}", &[], &env).is_err());
    }

    #[test]
    fn keys_checked() {
        assert!(check_key("a/b.tar.gz").is_ok());
        assert!(check_key("/a").is_err());
        assert!(check_key("a//b").is_err());
        assert!(check_key("a/../b").is_err());
        assert!(check_key("a/").is_err());
        assert!(check_key("").is_err());
        assert!(check_key(&"x".repeat(1025)).is_err());
        assert!(check_key("a\nb").is_err());
    }

    #[test]
    fn relative_paths() {
        let cwd = Path::new("/ws");
        assert_eq!(
            relative(Path::new("./dist/a"), Path::new("."), cwd).unwrap(),
            "dist/a"
        );
        assert_eq!(
            relative(Path::new("/ws/dist/a"), Path::new("dist"), cwd).unwrap(),
            "a"
        );
        assert!(relative(Path::new("../x"), Path::new("."), cwd).is_err());
        assert!(relative(Path::new("dist"), Path::new("dist"), cwd).is_err());
    }

    #[test]
    fn duplicate_keys_refused() {
        let files = vec![PathBuf::from("a/x.bin"), PathBuf::from("b/x.bin")];
        let e = plan(&files, "{name}", Path::new("."), Path::new("/ws"), &env).unwrap_err();
        assert!(e.message().contains("both be pushed"), "{e}");
        let p = plan(
            &files,
            "{JOB_NAME}/{path}",
            Path::new("."),
            Path::new("/ws"),
            &env,
        )
        .unwrap();
        assert_eq!(p[1].key, "folder/app/b/x.bin");
    }

    #[test]
    fn prefixes() {
        assert_eq!(
            literal_prefix("app/12/dist/*.gz"),
            ("app/12/dist/", "app/12/dist/")
        );
        assert_eq!(literal_prefix("app/12/di*"), ("app/12/di", "app/12/"));
        assert_eq!(literal_prefix("app/12/a.gz"), ("app/12/a.gz", "app/12/"));
        assert_eq!(literal_prefix("*.gz"), ("", ""));
    }
}
