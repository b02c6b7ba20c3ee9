//! Jenkins label expressions: parse and evaluate as Jenkins does.
//!
//! Grammar (Jenkins `LabelExpression`), lowest precedence first:
//!
//! ```text
//! expr  := term1 EOF
//! term1 := term2 ( '<->' term2 )*          left-associative
//! term2 := term3 ( '->' term3 )?           no chaining: `a -> b -> c` is an error
//! term3 := term4 ( '||' term4 )*
//! term4 := term5 ( '&&' term5 )*
//! term5 := '!' term6 | term6                `!!a` is an error, `!(!a)` is fine
//! term6 := '(' term1 ')' | ATOM | STRING
//! ATOM  := one or more chars other than & | ! < > ( ) space tab " '
//! ```
//!
//! One deliberate leniency: an atom stops before `->`, so the canonical forms Jenkins prints
//! without spaces (`a->b`) parse too.

use std::collections::BTreeSet;
use std::fmt;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expr {
    Atom(String),
    Not(Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Implies(Box<Expr>, Box<Expr>),
    Iff(Box<Expr>, Box<Expr>),
    Paren(Box<Expr>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    pub input: String,
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "label expression `{}`: {}", self.input, self.message)
    }
}

impl std::error::Error for ParseError {}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Tok {
    And,
    Or,
    Not,
    Implies,
    Iff,
    LParen,
    RParen,
    Atom(String),
}

fn lex(s: &str) -> Result<Vec<Tok>, String> {
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    let mut out = Vec::new();
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        match c {
            ' ' | '\t' => i += 1,
            '&' if next == Some('&') => {
                out.push(Tok::And);
                i += 2;
            }
            '|' if next == Some('|') => {
                out.push(Tok::Or);
                i += 2;
            }
            '!' => {
                out.push(Tok::Not);
                i += 1;
            }
            '-' if next == Some('>') => {
                out.push(Tok::Implies);
                i += 2;
            }
            '<' if next == Some('-') && chars.get(i + 2) == Some(&'>') => {
                out.push(Tok::Iff);
                i += 3;
            }
            '(' => {
                out.push(Tok::LParen);
                i += 1;
            }
            ')' => {
                out.push(Tok::RParen);
                i += 1;
            }
            '"' => {
                let mut v = String::new();
                i += 1;
                let mut closed = false;
                while i < chars.len() {
                    match chars[i] {
                        '"' => {
                            closed = true;
                            i += 1;
                            break;
                        }
                        '\\' => {
                            let e = chars.get(i + 1).copied().ok_or("unfinished escape")?;
                            v.push(match e {
                                'b' => '\u{8}',
                                't' => '\t',
                                'n' => '\n',
                                'f' => '\u{c}',
                                'r' => '\r',
                                '"' | '\'' | '\\' => e,
                                other => return Err(format!("unknown escape \\{other}")),
                            });
                            i += 2;
                        }
                        '\r' | '\n' => return Err("line break inside a quoted label".into()),
                        other => {
                            v.push(other);
                            i += 1;
                        }
                    }
                }
                if !closed {
                    return Err("unterminated quoted label".into());
                }
                out.push(Tok::Atom(v));
            }
            '&' | '|' | '<' | '>' | '\'' => {
                return Err(format!("unexpected `{c}` at position {}", i + 1));
            }
            _ => {
                let mut v = String::new();
                while i < chars.len() {
                    let c = chars[i];
                    if " \t&|!<>()\"'".contains(c) {
                        break;
                    }
                    if c == '-' && chars.get(i + 1) == Some(&'>') {
                        break;
                    }
                    v.push(c);
                    i += 1;
                }
                out.push(Tok::Atom(v));
            }
        }
    }
    Ok(out)
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    fn eat(&mut self, t: &Tok) -> bool {
        if self.peek() == Some(t) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn term1(&mut self, depth: usize) -> Result<Expr, String> {
        let mut l = self.term2(depth)?;
        while self.eat(&Tok::Iff) {
            let r = self.term2(depth)?;
            l = Expr::Iff(Box::new(l), Box::new(r));
        }
        Ok(l)
    }

    fn term2(&mut self, depth: usize) -> Result<Expr, String> {
        let l = self.term3(depth)?;
        if self.eat(&Tok::Implies) {
            let r = self.term3(depth)?;
            if self.peek() == Some(&Tok::Implies) {
                return Err("`->` cannot be chained: add parentheses".into());
            }
            return Ok(Expr::Implies(Box::new(l), Box::new(r)));
        }
        Ok(l)
    }

    fn term3(&mut self, depth: usize) -> Result<Expr, String> {
        let mut l = self.term4(depth)?;
        while self.eat(&Tok::Or) {
            let r = self.term4(depth)?;
            l = Expr::Or(Box::new(l), Box::new(r));
        }
        Ok(l)
    }

    fn term4(&mut self, depth: usize) -> Result<Expr, String> {
        let mut l = self.term5(depth)?;
        while self.eat(&Tok::And) {
            let r = self.term5(depth)?;
            l = Expr::And(Box::new(l), Box::new(r));
        }
        Ok(l)
    }

    fn term5(&mut self, depth: usize) -> Result<Expr, String> {
        if self.eat(&Tok::Not) {
            if self.peek() == Some(&Tok::Not) {
                return Err("`!!` is not allowed: write `!(!x)`".into());
            }
            return Ok(Expr::Not(Box::new(self.term6(depth)?)));
        }
        self.term6(depth)
    }

    fn term6(&mut self, depth: usize) -> Result<Expr, String> {
        if depth > 64 {
            return Err("nested too deeply".into());
        }
        match self.toks.get(self.pos).cloned() {
            Some(Tok::LParen) => {
                self.pos += 1;
                let e = self.term1(depth + 1)?;
                if !self.eat(&Tok::RParen) {
                    return Err("missing `)`".into());
                }
                Ok(Expr::Paren(Box::new(e)))
            }
            Some(Tok::Atom(a)) => {
                self.pos += 1;
                Ok(Expr::Atom(a))
            }
            Some(t) => Err(format!("unexpected {}", tok_name(&t))),
            None => Err("unexpected end of expression".into()),
        }
    }
}

fn tok_name(t: &Tok) -> &'static str {
    match t {
        Tok::And => "`&&`",
        Tok::Or => "`||`",
        Tok::Not => "`!`",
        Tok::Implies => "`->`",
        Tok::Iff => "`<->`",
        Tok::LParen => "`(`",
        Tok::RParen => "`)`",
        Tok::Atom(_) => "label",
    }
}

/// Parse a label expression. An empty or all-blank string is an error here; Jenkins treats
/// it as "no label", which callers handle before parsing.
pub fn parse(s: &str) -> Result<Expr, ParseError> {
    if s.len() > 4096 {
        return Err(ParseError {
            input: s.chars().take(64).collect(),
            message: "longer than 4096 bytes".into(),
        });
    }
    let err = |m: String| ParseError {
        input: s.to_string(),
        message: m,
    };
    let toks = lex(s).map_err(err)?;
    if toks.is_empty() {
        return Err(err("empty expression".into()));
    }
    let mut p = Parser { toks, pos: 0 };
    let e = p.term1(0).map_err(err)?;
    if let Some(t) = p.peek() {
        return Err(err(format!(
            "unexpected {} after the expression",
            tok_name(t)
        )));
    }
    Ok(e)
}

impl Expr {
    /// True if a node carrying exactly `labels` satisfies the expression.
    pub fn matches(&self, labels: &BTreeSet<String>) -> bool {
        match self {
            Expr::Atom(a) => labels.contains(a),
            Expr::Not(e) => !e.matches(labels),
            Expr::And(a, b) => a.matches(labels) && b.matches(labels),
            Expr::Or(a, b) => a.matches(labels) || b.matches(labels),
            Expr::Implies(a, b) => !a.matches(labels) || b.matches(labels),
            Expr::Iff(a, b) => a.matches(labels) == b.matches(labels),
            Expr::Paren(e) => e.matches(labels),
        }
    }

    /// The atoms the expression mentions.
    pub fn atoms(&self) -> BTreeSet<&str> {
        let mut out = BTreeSet::new();
        self.collect(&mut out);
        out
    }

    fn collect<'a>(&'a self, out: &mut BTreeSet<&'a str>) {
        match self {
            Expr::Atom(a) => {
                out.insert(a.as_str());
            }
            Expr::Not(e) | Expr::Paren(e) => e.collect(out),
            Expr::And(a, b) | Expr::Or(a, b) | Expr::Implies(a, b) | Expr::Iff(a, b) => {
                a.collect(out);
                b.collect(out);
            }
        }
    }

    /// Jenkins' canonical rendering (`Label.getName()`): no spaces, parentheses only where
    /// the user wrote them, atoms quoted when they contain special characters.
    pub fn canonical(&self) -> String {
        match self {
            Expr::Atom(a) => quote_if_needed(a),
            Expr::Not(e) => format!("!{}", e.canonical()),
            Expr::And(a, b) => format!("{}&&{}", a.canonical(), b.canonical()),
            Expr::Or(a, b) => format!("{}||{}", a.canonical(), b.canonical()),
            Expr::Implies(a, b) => format!("{}->{}", a.canonical(), b.canonical()),
            Expr::Iff(a, b) => format!("{}<->{}", a.canonical(), b.canonical()),
            Expr::Paren(e) => format!("({})", e.canonical()),
        }
    }
}

fn quote_if_needed(a: &str) -> String {
    let needs = a.is_empty() || a.chars().any(|c| " \t&|!<>()\"'=".contains(c));
    if !needs {
        return a.to_string();
    }
    let mut s = String::from("\"");
    for c in a.chars() {
        match c {
            '"' => s.push_str("\\\""),
            '\\' => s.push_str("\\\\"),
            c => s.push(c),
        }
    }
    s.push('"');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(l: &[&str]) -> BTreeSet<String> {
        l.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn evaluation_table() {
        let linux = set(&["linux", "x64", "docker"]);
        let cases: &[(&str, bool)] = &[
            ("linux", true),
            ("windows", false),
            ("linux && docker", true),
            ("linux&&docker", true),
            ("linux && windows", false),
            ("linux || windows", true),
            ("windows || mac", false),
            ("!windows", true),
            ("!linux", false),
            ("linux && !windows", true),
            ("windows -> gpu", true),
            ("linux -> gpu", false),
            ("linux->docker", true),
            ("linux <-> x64", true),
            ("linux <-> gpu", false),
            ("gpu <-> windows", true),
            ("(linux || mac) && x64", true),
            ("linux || mac && gpu", true),
            ("(linux || mac) && gpu", false),
            ("!(linux && gpu)", true),
            ("\"linux\"", true),
            ("\"x64\" && linux", true),
            ("a <-> b <-> c", false),
            ("linux&&x64&&docker", true),
        ];
        for (e, want) in cases {
            let p = parse(e).unwrap_or_else(|err| panic!("{e}: {err}"));
            assert_eq!(p.matches(&linux), *want, "{e}");
        }
    }

    #[test]
    fn precedence_and_associativity() {
        // && binds tighter than ||, which binds tighter than ->, then <->.
        assert_eq!(
            parse("a || b && c").unwrap(),
            Expr::Or(
                Box::new(Expr::Atom("a".into())),
                Box::new(Expr::And(
                    Box::new(Expr::Atom("b".into())),
                    Box::new(Expr::Atom("c".into()))
                ))
            )
        );
        let e = parse("a -> b <-> c").unwrap();
        assert!(matches!(e, Expr::Iff(..)));
        // <-> is left-associative: (a<->b)<->c. With a=F,b=F,c=F: (T)<->F = F.
        assert!(!parse("a <-> b <-> c").unwrap().matches(&set(&[])));
        assert!(parse("a<->b<->c").unwrap().matches(&set(&["a", "b", "c"])));
    }

    #[test]
    fn rejects_what_jenkins_rejects() {
        for bad in [
            "",
            "  ",
            "a &&",
            "&& a",
            "a b",
            "(a",
            "a)",
            "a -> b -> c",
            "!!a",
            "a & b",
            "a | b",
            "'a'",
            "\"unterminated",
            "a > b",
            "()",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} should not parse");
        }
        assert!(parse("!(!a)").is_ok());
    }

    #[test]
    fn atoms_with_punctuation() {
        let e = parse("linux-x64 && c5.9xlarge && os:ubuntu-22.04").unwrap();
        assert!(e.matches(&set(&["linux-x64", "c5.9xlarge", "os:ubuntu-22.04"])));
        let q = parse("\"with space\" && \"a\\\"b\"").unwrap();
        assert_eq!(q.atoms(), ["a\"b", "with space"].into_iter().collect());
    }

    #[test]
    fn canonical_round_trip() {
        for (input, canon) in [
            ("linux && docker", "linux&&docker"),
            ("(linux || mac) && !gpu", "(linux||mac)&&!gpu"),
            ("a -> b", "a->b"),
            ("a <-> b", "a<->b"),
            ("\"with space\" || x", "\"with space\"||x"),
        ] {
            let e = parse(input).unwrap();
            assert_eq!(e.canonical(), canon);
            assert_eq!(parse(canon).unwrap(), e, "{canon}");
        }
    }
}
