//! Where things are in `fleet.toml`, from the TOML parser's spans (`toml_edit`'s document,
//! parsed from the same text as serde's): the line of a key, the key path of an error
//! span, and readable messages for parse errors. Nothing here scans the text for keys.

use super::ConfigError;
use std::ops::Range;
use toml_edit::{ImDocument, Item, Table, Value};

/// Longest piece of the file (a line, a value) echoed in a message.
pub(crate) const ECHO_MAX: usize = 200;

#[derive(Clone, Debug, PartialEq, Eq)]
enum Seg {
    Key(String),
    Index(usize),
}

/// One key or table of the document.
#[derive(Debug)]
struct Entry {
    path: Vec<Seg>,
    /// The key (for a table: its header); the whole `key = value` for the containment test.
    at: Range<usize>,
    whole: Range<usize>,
    /// A `[table]` / `[[table]]` header rather than a `key = value`.
    header: bool,
}

/// The document's keys and tables with their spans. Empty when the text does not parse.
pub(crate) struct Spans<'a> {
    text: &'a str,
    entries: Vec<Entry>,
    /// `name` of each `[[pool]]`, by index, for key paths.
    pool_names: Vec<Option<String>>,
    parsed: bool,
}

impl<'a> Spans<'a> {
    pub(crate) fn new(text: &'a str) -> Self {
        let mut s = Spans {
            text,
            entries: Vec::new(),
            pool_names: Vec::new(),
            parsed: false,
        };
        if let Ok(doc) = ImDocument::parse(text) {
            s.parsed = true;
            let root = doc.as_table();
            walk_table(root, &mut Vec::new(), &mut s.entries);
            if let Some(pools) = root.get("pool").and_then(Item::as_array_of_tables) {
                s.pool_names = pools
                    .iter()
                    .map(|t| t.get("name").and_then(Item::as_str).map(str::to_string))
                    .collect();
            }
        }
        s
    }

    /// False when the text is not TOML (a syntax error: see [`syntax_error`]).
    pub(crate) fn parsed(&self) -> bool {
        self.parsed
    }

    /// 1-based line of a byte offset.
    pub(crate) fn line_of(&self, offset: usize) -> usize {
        line_of(self.text.as_bytes(), offset)
    }

    /// The line of `key` in `table` (`""`: the top level; `index` for `[[pool]]`), else the
    /// line of the table's header, else `None`.
    pub(crate) fn line(&self, table: &str, index: Option<usize>, key: &str) -> Option<usize> {
        let mut path = Vec::new();
        if !table.is_empty() {
            path.push(Seg::Key(table.to_string()));
        }
        if let Some(i) = index {
            path.push(Seg::Index(i));
        }
        // `schedule[0].cron`: keys and indexes below the table.
        for part in key.split('.') {
            let (name, indexes) = part.split_once('[').unwrap_or((part, ""));
            path.push(Seg::Key(name.to_string()));
            for ix in indexes.split('[') {
                if let Ok(n) = ix.trim_end_matches(']').parse() {
                    path.push(Seg::Index(n));
                }
            }
        }
        // The deepest part of the path that is in the file (a missing key: its table).
        while !path.is_empty() {
            if let Some(e) = self.find(&path) {
                return Some(self.line_of(e.at.start));
            }
            path.pop();
        }
        None
    }

    fn find(&self, path: &[Seg]) -> Option<&Entry> {
        if path.is_empty() {
            return None;
        }
        self.entries.iter().find(|e| e.path == path)
    }

    /// `pool[0] (name "linux").executors`, `jenkins.url`, `fleet_id`.
    fn render(&self, path: &[Seg]) -> String {
        let mut out = String::new();
        for (i, seg) in path.iter().enumerate() {
            match seg {
                Seg::Key(k) => {
                    if i > 0 {
                        out.push('.');
                    }
                    out.push_str(k);
                }
                Seg::Index(n) => {
                    out.push_str(&format!("[{n}]"));
                    let is_pool = i == 1 && path[0] == Seg::Key("pool".into());
                    if let Some(Some(name)) = is_pool.then(|| self.pool_names.get(*n)).flatten() {
                        out.push_str(&format!(" (name \"{}\")", shorten(name, 60)));
                    }
                }
            }
        }
        out
    }

    /// The innermost key or table an error span points into.
    fn at(&self, offset: usize) -> Option<&Entry> {
        // A `key = value` (deepest first: a value inside an inline table or array).
        let leaf = self
            .entries
            .iter()
            .filter(|e| {
                !e.header && e.whole.start <= offset && offset < e.whole.end.max(e.whole.start + 1)
            })
            .max_by_key(|e| e.path.len());
        if leaf.is_some() {
            return leaf;
        }
        // Otherwise the last table whose header starts at or before it.
        self.entries
            .iter()
            .filter(|e| e.header && e.at.start <= offset)
            .max_by_key(|e| e.at.start)
    }

    /// A serde error (`toml::de::Error`) as a [`ConfigError`]: key path from the span,
    /// the line, a message that says what was expected.
    pub(crate) fn deserialize_error(&self, e: &toml::de::Error) -> ConfigError {
        let message = e.message().trim();
        let span = e.span();
        let entry = span.as_ref().and_then(|s| self.at(s.start));
        if let Some(field) = missing_field(message) {
            let (table, line) = match entry {
                // A missing key of a table: at the table's header.
                Some(t) if t.header => (Some(t.path.clone()), Some(self.line_of(t.at.start))),
                Some(t) => (Some(t.path.clone()), Some(self.line_of(t.at.start))),
                None => (None, None),
            };
            return match table {
                None => ConfigError {
                    key: field.to_string(),
                    line: None,
                    message: match field {
                        "jenkins" | "aws" => format!(
                            "the [{field}] section is missing; add it (see fleet/README.md, \"Config file\")"
                        ),
                        "pool" => "no [[pool]] table: add at least one (see fleet/README.md, \"Config file\")".into(),
                        _ => format!("`{field}` is missing at the top level; add it"),
                    },
                },
                Some(path) => {
                    let table = self.render(&path);
                    let header = match path.last() {
                        Some(Seg::Index(_)) => format!("this [[{}]]", self.render(&path[..1])),
                        _ => format!("[{table}]"),
                    };
                    ConfigError {
                        key: format!("{table}.{field}"),
                        line,
                        message: format!("`{field}` is missing in {header}; add it"),
                    }
                }
            };
        }
        let key = match entry {
            Some(e) => self.render(&e.path),
            None => "(top level)".into(),
        };
        let line = span.map(|s| self.line_of(s.start));
        ConfigError {
            key,
            line,
            message: humanize(message),
        }
    }
}

/// A syntax error (the text is not TOML): the line and column, and the line itself
/// (shortened around the column when long).
pub(crate) fn syntax_error(text: &str, e: &toml::de::Error) -> ConfigError {
    let message = shorten(e.message().trim(), 300);
    let Some(span) = e.span() else {
        return ConfigError {
            key: "(syntax)".into(),
            line: None,
            message,
        };
    };
    let start = span.start.min(text.len());
    let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[start..].find('\n').map_or(text.len(), |i| start + i);
    let line_text = &text[line_start..line_end];
    let column = text[line_start..start].chars().count() + 1;
    ConfigError {
        key: "(syntax)".into(),
        line: Some(line_of(text.as_bytes(), start)),
        message: format!(
            "{message} (column {column}): {}",
            excerpt(line_text, column - 1)
        ),
    }
}

/// The file is not UTF-8: where, by byte offset, line and column.
pub(crate) fn utf8_error(bytes: &[u8], e: &std::str::Utf8Error) -> ConfigError {
    let at = e.valid_up_to();
    let line_start = bytes[..at]
        .iter()
        .rposition(|b| *b == b'\n')
        .map_or(0, |i| i + 1);
    let column = String::from_utf8_lossy(&bytes[line_start..at])
        .chars()
        .count()
        + 1;
    ConfigError {
        key: "(file)".into(),
        line: Some(line_of(bytes, at)),
        message: format!(
            "not valid UTF-8: byte 0x{:02X} at offset {at} (column {column}); a TOML file must be UTF-8 (re-save it as UTF-8, or escape the character as \\uXXXX)",
            bytes.get(at).copied().unwrap_or(0)
        ),
    }
}

fn line_of(bytes: &[u8], offset: usize) -> usize {
    bytes[..offset.min(bytes.len())]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

fn missing_field(message: &str) -> Option<&str> {
    message
        .strip_prefix("missing field `")
        .and_then(|r| r.strip_suffix('`'))
}

/// serde's `invalid type: string "four", expected i64` as `expected an integer, found
/// string "four"`; long echoed values shortened.
fn humanize(message: &str) -> String {
    if let Some(rest) = message.strip_prefix("invalid type: ") {
        if let Some((found, expected)) = rest.rsplit_once(", expected ") {
            let expected = match expected {
                "i64" | "u64" | "i32" | "u32" | "usize" | "u8" | "u16" => "an integer",
                "f64" | "f32" => "a number",
                "a boolean" | "bool" => "true or false",
                "a sequence" => "an array, e.g. [\"a\", \"b\"]",
                "a string" => "a string in quotes",
                other => other,
            };
            return format!("expected {expected}, found {}", shorten(found, 80));
        }
    }
    if let Some(rest) = message.strip_prefix("data did not match any variant of untagged enum ") {
        return match rest.trim() {
            "RawDuration" => "expected a duration: a number of seconds or a text such as \"30s\", \"5m\", \"1h\"".into(),
            "RawInstanceType" => "each entry must be a type name (\"c5.xlarge\") or a table { type = \"c5.xlarge\", executors = 4, price = 0.17 } with a whole number of executors and a number as price".into(),
            "RawAmi" => "expected an image id (\"ami-…\"), { tag = \"KEY\", value = \"VALUE\" } or { ssm = \"/parameter/name\" }".into(),
            _ => shorten(message, 400),
        };
    }
    shorten(message, 400)
}

/// At most `max` characters of `s`, with `…` when cut.
pub(crate) fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max).collect();
    out.push('…');
    out
}

/// About [`ECHO_MAX`] characters of `line` around character `column` (0-based), with `…`
/// where cut.
fn excerpt(line: &str, column: usize) -> String {
    let n = line.chars().count();
    if n <= ECHO_MAX {
        return line.to_string();
    }
    let from = column.saturating_sub(ECHO_MAX / 2).min(n - ECHO_MAX);
    let mut out = String::new();
    if from > 0 {
        out.push('…');
    }
    out.extend(line.chars().skip(from).take(ECHO_MAX));
    if from + ECHO_MAX < n {
        out.push('…');
    }
    out
}

fn walk_table(t: &Table, path: &mut Vec<Seg>, out: &mut Vec<Entry>) {
    for (k, item) in t.iter() {
        let key_span = t.key(k).and_then(|key| key.span());
        path.push(Seg::Key(k.to_string()));
        walk_item(item, key_span, path, out);
        path.pop();
    }
}

fn walk_item(
    item: &Item,
    key_span: Option<Range<usize>>,
    path: &mut Vec<Seg>,
    out: &mut Vec<Entry>,
) {
    match item {
        Item::Table(sub) => {
            if let Some(h) = sub.span() {
                out.push(Entry {
                    path: path.clone(),
                    at: h.clone(),
                    whole: h,
                    header: true,
                });
            }
            walk_table(sub, path, out);
        }
        Item::ArrayOfTables(a) => {
            for (i, sub) in a.iter().enumerate() {
                path.push(Seg::Index(i));
                if let Some(h) = sub.span() {
                    out.push(Entry {
                        path: path.clone(),
                        at: h.clone(),
                        whole: h,
                        header: true,
                    });
                }
                walk_table(sub, path, out);
                path.pop();
            }
        }
        Item::Value(v) => walk_value(v, key_span, path, out),
        Item::None => {}
    }
}

fn walk_value(
    v: &Value,
    key_span: Option<Range<usize>>,
    path: &mut Vec<Seg>,
    out: &mut Vec<Entry>,
) {
    let value_span = v.span();
    if let Some(at) = key_span.clone().or_else(|| value_span.clone()) {
        let end = value_span.as_ref().map_or(at.end, |s| s.end.max(at.end));
        out.push(Entry {
            path: path.clone(),
            at: at.clone(),
            whole: at.start..end,
            header: false,
        });
    }
    match v {
        Value::InlineTable(t) => {
            for (k, item) in t.iter() {
                let ks = t.key(k).and_then(|key| key.span());
                path.push(Seg::Key(k.to_string()));
                walk_value(item, ks, path, out);
                path.pop();
            }
        }
        Value::Array(a) => {
            for (i, item) in a.iter().enumerate() {
                path.push(Seg::Index(i));
                walk_value(item, None, path, out);
                path.pop();
            }
        }
        _ => {}
    }
}
