//! Decode and encode throughput of the codec against the JDK's ObjectInputStream and
//! ObjectOutputStream on the same bytes, in the same run. Run through `scripts/bench-javaser`,
//! which builds the JDK peer and the inputs.
//!
//! Usage: javaser --corpus DIR --big FILE --java-cp DIR [--seconds S]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use nectr_agent::javaser::{self, DecodeOptions, Entry, Item, Limits, Stream};

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let mut corpus = None;
    let mut big = None;
    let mut java_cp = None;
    let mut seconds = 3.0f64;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = || {
            it.next()
                .cloned()
                .unwrap_or_else(|| usage(&format!("{a} needs a value")))
        };
        match a.as_str() {
            "--corpus" => corpus = Some(PathBuf::from(val())),
            "--big" => big = Some(PathBuf::from(val())),
            "--java-cp" => java_cp = Some(PathBuf::from(val())),
            "--seconds" => {
                seconds = val()
                    .parse()
                    .unwrap_or_else(|_| usage("--seconds needs a number"))
            }
            other => usage(&format!("unknown argument {other}")),
        }
    }
    let java_cp = java_cp.unwrap_or_else(|| usage("--java-cp is required"));
    println!(
        "{:<28} {:>10} | {:>12} {:>12} {:>12} {:>7} | {:>12} {:>12} {:>7}",
        "workload",
        "MB",
        "rust dec MB/s",
        "rust dec obj/s",
        "jdk dec MB/s",
        "ratio",
        "rust enc MB/s",
        "jdk enc MB/s",
        "ratio"
    );
    if let Some(dir) = corpus {
        let streams = load_corpus(&dir);
        report(
            &format!("corpus ({} streams)", streams.len()),
            &streams,
            &dir,
            &java_cp,
            seconds,
        );
    }
    if let Some(file) = big {
        let bytes = std::fs::read(&file).unwrap_or_else(|e| usage(&format!("{file:?}: {e}")));
        report("large mixed stream", &[bytes], &file, &java_cp, seconds);
    }
}

fn usage(msg: &str) -> ! {
    eprintln!(
        "javaser bench: {msg}\nusage: javaser --corpus DIR --big FILE --java-cp DIR [--seconds S]"
    );
    std::process::exit(2)
}

fn options() -> DecodeOptions {
    let mut o = DecodeOptions::default();
    o.no_default_fields
        .push("nectr.peer.model.NoDefaultFields".into());
    o.limits = Limits {
        max_depth: 2_000,
        ..Limits::DEFAULT
    };
    o
}

/// The corpus streams the JDK can also read back as plain objects: the same filter as the
/// peer's bench (no top-level block data, no aborted writes).
fn load_corpus(dir: &Path) -> Vec<Vec<u8>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| usage(&format!("{dir:?}: {e}")))
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "bin"))
        .collect();
    files.sort();
    files
        .into_iter()
        .filter_map(|f| {
            let bytes = std::fs::read(&f).ok()?;
            let s = javaser::decode(&bytes, &options()).ok()?;
            s.items
                .iter()
                .all(|i| matches!(i, Item::Value(_) | Item::Reset))
                .then_some(bytes)
        })
        .collect()
}

fn objects(s: &Stream) -> u64 {
    s.heap
        .iter()
        .filter(|(_, e)| {
            matches!(
                e,
                Entry::Object(_)
                    | Entry::Array(_)
                    | Entry::String(_)
                    | Entry::Enum(_)
                    | Entry::Class(_)
            )
        })
        .count() as u64
}

/// Warm up for a third of `seconds`, then run for at least `seconds` and 3 iterations.
fn measure(seconds: f64, mut op: impl FnMut() -> u64) -> Duration {
    let mut sink = 0u64;
    let warm = Instant::now();
    while warm.elapsed().as_secs_f64() < seconds / 3.0 {
        sink = sink.wrapping_add(op());
    }
    let start = Instant::now();
    let mut n = 0u32;
    while n < 3 || start.elapsed().as_secs_f64() < seconds {
        sink = sink.wrapping_add(op());
        n += 1;
    }
    std::hint::black_box(sink);
    start.elapsed() / n
}

fn report(name: &str, streams: &[Vec<u8>], input: &Path, java_cp: &Path, seconds: f64) {
    let bytes: u64 = streams.iter().map(|s| s.len() as u64).sum();
    let opts = options();
    let decoded: Vec<Stream> = streams
        .iter()
        .map(|b| javaser::decode(b, &opts).unwrap_or_else(|e| usage(&format!("{name}: {e}"))))
        .collect();
    let objs: u64 = decoded.iter().map(objects).sum();
    let dec = measure(seconds, || {
        streams
            .iter()
            .map(|b| {
                javaser::decode(b, &opts)
                    .map(|s| s.items.len() as u64)
                    .unwrap_or(0)
            })
            .sum()
    });
    let enc = measure(seconds, || {
        decoded
            .iter()
            .map(|s| {
                javaser::encode_with_limits(s, opts.limits)
                    .map(|b| b.len() as u64)
                    .unwrap_or(0)
            })
            .sum()
    });
    let (jdec, jenc) = java(input, java_cp, seconds);
    let mbps = |d: Duration| bytes as f64 / 1e6 / d.as_secs_f64();
    println!(
        "{:<28} {:>10.1} | {:>12.1} {:>12.0} {:>12.1} {:>6.2}x | {:>12.1} {:>12.1} {:>6.2}x",
        name,
        bytes as f64 / 1e6,
        mbps(dec),
        objs as f64 / dec.as_secs_f64(),
        mbps(jdec),
        jdec.as_secs_f64() / dec.as_secs_f64(),
        mbps(enc),
        mbps(jenc),
        jenc.as_secs_f64() / enc.as_secs_f64(),
    );
}

/// Runs the JDK side on the same input and returns (decode, encode) time per iteration.
fn java(input: &Path, java_cp: &Path, seconds: f64) -> (Duration, Duration) {
    let java = std::env::var_os("JAVA_HOME")
        .map(|h| PathBuf::from(h).join("bin/java"))
        .unwrap_or_else(|| PathBuf::from("java"));
    let out = Command::new(java)
        .arg("-cp")
        .arg(java_cp)
        .arg("nectr.peer.Main")
        .arg("bench")
        .arg(input)
        .arg(seconds.to_string())
        .output()
        .unwrap_or_else(|e| usage(&format!("cannot run java: {e}")));
    if !out.status.success() {
        usage(&format!(
            "java bench failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |k: &str| -> Duration {
        text.split_whitespace()
            .find_map(|kv| kv.strip_prefix(k)?.strip_prefix('=')?.parse::<u64>().ok())
            .map(Duration::from_nanos)
            .unwrap_or_else(|| usage(&format!("java bench output lacks {k}: {text}")))
    };
    if let Some(files) = text
        .split_whitespace()
        .find_map(|kv| kv.strip_prefix("files="))
    {
        if input.is_dir() && files.parse::<usize>().ok() != Some(load_corpus(input).len()) {
            usage(&format!(
                "the JDK benchmarked {files} corpus streams, Rust a different number"
            ));
        }
    }
    (field("decode_ns_per_iter"), field("encode_ns_per_iter"))
}
