//! The `nectr-agent` command.

use std::io::{Read, Write};
use std::process::ExitCode;

use nectr_agent::debug;

const USAGE: &str = "\
nectr-agent: a Jenkins inbound agent without a JVM

USAGE:
    nectr-agent debug javaser [--no-default-fields CLASS]... [FILE|-]
                                            print a Java serialization stream (or a capture of
                                            remoting chunk frames) as JSON. CLASS: a class whose
                                            writeObject skips defaultWriteObject (the stream
                                            cannot say so)
    nectr-agent debug serialver CLASSFILE.. print the default serialVersionUID of class files
    nectr-agent --version
    nectr-agent --help

Exit status: 0 success, 2 malformed input or bad usage, 1 other errors.
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        [] | ["-h" | "--help" | "help"] => {
            print!("{USAGE}");
            ExitCode::SUCCESS
        }
        ["-V" | "--version" | "-version"] => {
            println!("nectr-agent {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        ["debug", "javaser", rest @ ..] => debug_javaser(rest),
        ["debug", "serialver", files @ ..] if !files.is_empty() => debug_serialver(files),
        _ => {
            eprintln!(
                "nectr-agent: unknown arguments {:?}; the agent itself (connecting to a controller) is not built yet; see `nectr-agent --help`",
                args
            );
            ExitCode::from(2)
        }
    }
}

fn read_input(path: &str) -> Result<Vec<u8>, String> {
    let mut buf = Vec::new();
    let r = if path == "-" {
        std::io::stdin().lock().read_to_end(&mut buf).map(|_| ())
    } else {
        std::fs::File::open(path).and_then(|mut f| f.read_to_end(&mut buf).map(|_| ()))
    };
    r.map_err(|e| format!("cannot read {path}: {e}"))?;
    Ok(buf)
}

fn debug_javaser(args: &[&str]) -> ExitCode {
    let mut extra = Vec::new();
    let mut paths = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match *a {
            "--no-default-fields" => match it.next() {
                Some(c) => extra.push(c.to_string()),
                None => {
                    eprintln!("nectr-agent debug javaser: --no-default-fields needs a class name");
                    return ExitCode::from(2);
                }
            },
            p if p.starts_with("--") => {
                eprintln!("nectr-agent debug javaser: unknown option {p}; see --help");
                return ExitCode::from(2);
            }
            p => paths.push(p),
        }
    }
    let path = match paths.as_slice() {
        [] => "-",
        [p] => p,
        _ => {
            eprintln!("nectr-agent debug javaser: expected one FILE or - (stdin), got {paths:?}");
            return ExitCode::from(2);
        }
    };
    let opts = debug::options(&extra);
    let bytes = match read_input(path) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("nectr-agent debug javaser: {e}");
            return ExitCode::from(1);
        }
    };
    // Deeply nested graphs recurse while rendering: give them room.
    let dumped = std::thread::Builder::new()
        .stack_size(256 << 20)
        .spawn(move || debug::dump(&bytes, &opts))
        .map_err(|e| e.to_string())
        .and_then(|h| {
            h.join()
                .map_err(|_| "internal error while rendering".to_string())
        });
    let dumped = match dumped {
        Ok(d) => d,
        Err(e) => {
            eprintln!("nectr-agent debug javaser: {e}");
            return ExitCode::from(1);
        }
    };
    match dumped {
        Ok(json) => {
            let mut out = std::io::stdout().lock();
            let _ = serde_json::to_writer_pretty(&mut out, &json);
            let _ = writeln!(out);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("nectr-agent debug javaser: {path}: {e}");
            ExitCode::from(2)
        }
    }
}

fn debug_serialver(files: &[&str]) -> ExitCode {
    let mut status = ExitCode::SUCCESS;
    for f in files {
        let result = read_input(f).and_then(|b| {
            nectr_agent::javaser::classfile::parse(&b).map_err(|e| format!("{f}: {e}"))
        });
        match result {
            Ok(shape) => println!(
                "{}:    private static final long serialVersionUID = {}L;",
                shape.name,
                nectr_agent::javaser::suid::default_suid(&shape)
            ),
            Err(e) => {
                eprintln!("nectr-agent debug serialver: {e}");
                status = ExitCode::from(2);
            }
        }
    }
    status
}
