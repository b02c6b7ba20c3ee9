//! The codec against the JDK's own `ObjectOutputStream` / `ObjectInputStream`
//! (the peer in `tests/java`).

mod support;

use nectr_agent::javaser::{
    self, classfile, json::oracle_json, suid, ArrayData, Block, Builder, ClassSpec, Content,
    DecodeOptions, Item, Limits, Registry, Stream, Value,
};
use serde_json::Value as J;
use support::*;

/// The corpus holds a 500-deep object chain, deeper than the agent's default limit: the
/// interop tests raise it (on a large stack) to check the codec, not the limit.
const DEEP: Limits = Limits {
    max_depth: 2_000,
    ..Limits::DEFAULT
};

fn options() -> DecodeOptions {
    let mut o = DecodeOptions::default();
    o.no_default_fields
        .push("nectr.peer.model.NoDefaultFields".into());
    o.limits = DEEP;
    o
}

#[test]
fn jdk_written_corpus_decodes_to_the_values_java_reports_and_reencodes_byte_for_byte() {
    with_big_stack(check_corpus);
}

fn check_corpus() {
    let dir = scratch("corpus");
    run_peer(&["gen", dir.to_str().unwrap()]);
    let bins = files_with(&dir, "bin");
    assert!(
        bins.len() >= 200,
        "the corpus should hold at least 200 streams, got {}",
        bins.len()
    );
    let mut failures = Vec::new();
    for bin in &bins {
        let name = bin.file_name().unwrap().to_string_lossy().into_owned();
        let bytes = std::fs::read(bin).unwrap();
        let expected: J = parse_json(&std::fs::read(bin.with_extension("json")).unwrap())
            .unwrap_or_else(|e| panic!("{name}: oracle file is not JSON: {e}"));
        let stream = match javaser::decode(&bytes, &options()) {
            Ok(s) => s,
            Err(e) => {
                failures.push(format!("{name}: decode failed: {e}"));
                continue;
            }
        };
        let got = oracle_json(&stream);
        if let Some(d) = json_diff(&got, &expected, "$") {
            failures.push(format!(
                "{name}: value differs from Java's (rust vs java) {d}"
            ));
        }
        match javaser::encode_with_limits(&stream, DEEP) {
            Ok(again) if again == bytes => {}
            Ok(again) => {
                let at = again
                    .iter()
                    .zip(&bytes)
                    .position(|(a, b)| a != b)
                    .unwrap_or(again.len().min(bytes.len()));
                failures.push(format!(
                    "{name}: re-encoding differs from the JDK's bytes at offset {at} (lengths {} vs {})",
                    again.len(),
                    bytes.len()
                ));
            }
            Err(e) => failures.push(format!("{name}: encode failed: {e}")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} streams failed:\n{}",
        failures.len(),
        bins.len(),
        failures.join("\n")
    );
}

/// The peer's model classes, declared as the JDK sees them.
fn model_registry() -> Registry {
    let mut r = Registry::with_jdk();
    let m = |n: &str| format!("nectr.peer.model.{n}");
    r.declare(
        ClassSpec::new(&m("Point"), 1)
            .field("x", "I")
            .field("y", "I"),
    );
    r.declare(
        ClassSpec::new(&m("AllPrims"), 2)
            .field("z", "Z")
            .field("b", "B")
            .field("c", "C")
            .field("s", "S")
            .field("i", "I")
            .field("j", "J")
            .field("f", "F")
            .field("d", "D"),
    );
    r.declare(
        ClassSpec::new(&m("Node"), 3)
            .field("name", "Ljava/lang/String;")
            .field("next", "Lnectr/peer/model/Node;")
            .field("payload", "Ljava/lang/Object;"),
    );
    r.declare(ClassSpec::enumeration(&m("Color")));
    r.declare(
        ClassSpec::new(&m("Holder"), 4)
            .field("value", "Ljava/lang/Object;")
            .field("color", "Lnectr/peer/model/Color;")
            .field("ints", "[I")
            .field("names", "[Ljava/lang/String;"),
    );
    r.declare(ClassSpec::new(&m("Base"), 5).field("baseField", "I"));
    r.declare(
        ClassSpec::new(&m("Derived"), 6)
            .extends(&m("Base"))
            .field("derivedField", "Ljava/lang/String;"),
    );
    r.declare(
        ClassSpec::new(&m("Custom"), 7)
            .write_method()
            .field("n", "I"),
    );
    r
}

/// Streams written by the Rust encoder, each with the values it holds.
fn rust_streams(reg: &Registry) -> Vec<(&'static str, Stream)> {
    let m = |n: &str| format!("nectr.peer.model.{n}");
    let mut out = Vec::new();

    let mut b = Builder::new(reg);
    let p = b
        .object(&m("Point"), &[("x", Value::Int(1)), ("y", Value::Int(-2))])
        .unwrap();
    out.push(("point", b.into_stream(vec![Item::Value(p)])));

    let mut b = Builder::new(reg);
    let p = b
        .object(
            &m("AllPrims"),
            &[
                ("z", Value::Boolean(true)),
                ("b", Value::Byte(-128)),
                ("c", Value::Char(0xd83d)),
                ("s", Value::Short(i16::MIN)),
                ("i", Value::Int(i32::MAX)),
                ("j", Value::Long(i64::MIN)),
                ("f", Value::Float(f32::NAN)),
                ("d", Value::Double(-0.0)),
            ],
        )
        .unwrap();
    out.push(("allprims", b.into_stream(vec![Item::Value(p)])));

    // A cycle through two nodes, a shared payload, and a boxed Integer.
    let mut b = Builder::new(reg);
    let five = b.integer(5).unwrap();
    let na = b.string("a");
    let nb = b.string("b");
    let a = b
        .object(&m("Node"), &[("name", na), ("payload", five)])
        .unwrap();
    let second = b
        .object(&m("Node"), &[("name", nb), ("next", a), ("payload", five)])
        .unwrap();
    b.set_field(a, "next", second).unwrap();
    out.push(("node-cycle", b.into_stream(vec![Item::Value(a)])));

    let mut b = Builder::new(reg);
    let text = b.string("h\u{e9}llo \u{1F600} \0 end");
    let green = b.enum_const(&m("Color"), "GREEN").unwrap();
    let ints = b
        .array("[I", ArrayData::Int(vec![1, -2, i32::MIN]))
        .unwrap();
    let x = b.string("x");
    let z = b.string("z");
    let names = b
        .array(
            "[Ljava.lang.String;",
            ArrayData::Object(vec![x, Value::Null, z]),
        )
        .unwrap();
    let h = b
        .object(
            &m("Holder"),
            &[
                ("value", text),
                ("color", green),
                ("ints", ints),
                ("names", names),
            ],
        )
        .unwrap();
    out.push(("holder", b.into_stream(vec![Item::Value(h)])));

    let mut b = Builder::new(reg);
    let s = b.string("derived");
    let d = b
        .object(
            &m("Derived"),
            &[("baseField", Value::Int(7)), ("derivedField", s)],
        )
        .unwrap();
    out.push(("derived", b.into_stream(vec![Item::Value(d)])));

    let mut b = Builder::new(reg);
    let c = b.object(&m("Custom"), &[("n", Value::Int(21))]).unwrap();
    let tail = b.string("tail");
    b.set_data(
        c,
        &m("Custom"),
        vec![
            Content::Block(Block::new(42i32.to_be_bytes().to_vec())),
            Content::Value(tail),
        ],
    )
    .unwrap();
    out.push(("custom", b.into_stream(vec![Item::Value(c)])));

    let mut b = Builder::new(reg);
    let one = b.integer(1).unwrap();
    let two = b.string("two");
    let three = b.long(3).unwrap();
    let t = b.boolean(true).unwrap();
    let list = b.array_list(&[one, two, three, t, Value::Null]).unwrap();
    let k: Vec<Value> = (1..=3).map(|i| b.integer(i).unwrap()).collect();
    let v: Vec<Value> = ["one", "two", "three"]
        .iter()
        .map(|s| b.string(s))
        .collect();
    let map = b
        .hash_map(&[(k[0], v[0]), (k[1], v[1]), (k[2], list)])
        .unwrap();
    out.push(("collections", b.into_stream(vec![Item::Value(map)])));

    // Several top-level items: an object, primitive data, a back-reference, a long string.
    let mut b = Builder::new(reg);
    let p = b
        .object(&m("Point"), &[("x", Value::Int(3)), ("y", Value::Int(4))])
        .unwrap();
    let long = b.string(&"\u{e9}".repeat(40_000));
    out.push((
        "top-level",
        b.into_stream(vec![
            Item::Value(p),
            Item::Block(Block::new(7i32.to_be_bytes().to_vec())),
            Item::Value(p),
            Item::Value(long),
            Item::Value(Value::Null),
        ]),
    ));
    out
}

#[test]
fn rust_written_streams_are_read_by_the_jdk_with_the_same_values() {
    let reg = model_registry();
    let dir = scratch("rust-written");
    let streams = rust_streams(&reg);
    for (name, s) in &streams {
        let bytes = javaser::encode(s).unwrap_or_else(|e| panic!("{name}: {e}"));
        std::fs::write(dir.join(format!("{name}.bin")), &bytes).unwrap();
        // The Rust decoder must agree with itself before we ask Java.
        let back = javaser::decode(&bytes, &options()).unwrap();
        assert_eq!(
            oracle_json(&back),
            oracle_json(s),
            "{name}: self round trip"
        );
    }
    // Negative controls: the JDK must refuse a wrong serialVersionUID and a wrong field type.
    let mut bad = model_registry();
    bad.declare(
        ClassSpec::new("nectr.peer.model.Point", 99)
            .field("x", "I")
            .field("y", "I"),
    );
    let mut b = Builder::new(&bad);
    let p = b.object("nectr.peer.model.Point", &[]).unwrap();
    let wrong_suid = javaser::encode(&b.into_stream(vec![Item::Value(p)])).unwrap();
    std::fs::write(dir.join("wrong-suid.bin"), wrong_suid).unwrap();
    bad.declare(
        ClassSpec::new("nectr.peer.model.Point", 1)
            .field("x", "J")
            .field("y", "I"),
    );
    let mut b = Builder::new(&bad);
    let p = b.object("nectr.peer.model.Point", &[]).unwrap();
    let wrong_type = javaser::encode(&b.into_stream(vec![Item::Value(p)])).unwrap();
    std::fs::write(dir.join("wrong-type.bin"), wrong_type).unwrap();

    run_peer(&["check", dir.to_str().unwrap()]);

    let mut failures = Vec::new();
    for (name, s) in &streams {
        let path = dir.join(format!("{name}.actual.json"));
        let actual: J = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        if let Some(d) = json_diff(&oracle_json(s), &actual, "$") {
            failures.push(format!("{name}: (rust vs java) {d}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    for (name, needle) in [
        ("wrong-suid", "InvalidClassException"),
        ("wrong-type", "InvalidClassException"),
    ] {
        let actual = std::fs::read_to_string(dir.join(format!("{name}.actual.json"))).unwrap();
        assert!(
            actual.contains("\"error\"") && actual.contains(needle),
            "{name}: the JDK should have refused the stream, it reported {actual}"
        );
    }
}

#[test]
fn default_serial_version_uids_match_the_jdk() {
    let dir = scratch("suid");
    run_peer(&["suid", dir.to_str().unwrap()]);
    let table = std::fs::read_to_string(dir.join("suids.tsv")).unwrap();
    let mut checked = 0;
    let mut failures = Vec::new();
    for line in table.lines().filter(|l| !l.trim().is_empty()) {
        let cols: Vec<&str> = line.split('\t').collect();
        assert_eq!(cols.len(), 3, "bad suids.tsv line {line:?}");
        let expected: i64 = cols[2].parse().unwrap();
        let bytes = std::fs::read(dir.join(cols[1])).unwrap();
        let shape = classfile::parse(&bytes).unwrap_or_else(|e| panic!("{}: {e}", cols[0]));
        assert_eq!(shape.name, cols[0], "class file name");
        let got = suid::default_suid(&shape);
        if got != expected {
            failures.push(format!("{}: rust {got}, jdk {expected}", cols[0]));
        }
        checked += 1;
    }
    assert!(checked >= 30, "only {checked} classes checked");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn debug_javaser_dumps_jdk_streams_and_rejects_truncations_with_an_offset() {
    with_big_stack(check_cli);
}

fn check_cli() {
    let dir = scratch("cli");
    run_peer(&["gen", dir.to_str().unwrap()]);
    let exe = env!("CARGO_BIN_EXE_nectr-agent");
    let mut dumped = 0;
    for bin in files_with(&dir, "bin").iter().step_by(7) {
        let out = std::process::Command::new(exe)
            .args(["debug", "javaser"])
            .arg(bin)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{bin:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let j: J = parse_json(&out.stdout).expect("stdout is JSON");
        assert!(j.get("items").is_some(), "{bin:?}: no items in {j}");
        dumped += 1;

        let bytes = std::fs::read(bin).unwrap();
        // Dropping the last byte leaves a valid stream when it was a top-level null or reset.
        if bytes.len() > 8 && javaser::decode(&bytes[..bytes.len() - 1], &options()).is_err() {
            let cut = dir.join("truncated.bin");
            std::fs::write(&cut, &bytes[..bytes.len() - 1]).unwrap();
            let out = std::process::Command::new(exe)
                .args(["debug", "javaser"])
                .arg(&cut)
                .output()
                .unwrap();
            assert_eq!(
                out.status.code(),
                Some(2),
                "{bin:?} truncated should exit 2"
            );
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(err.trim_end().lines().count(), 1, "one-line error: {err}");
            assert!(err.contains("at byte"), "error names the offset: {err}");
        }
    }
    assert!(dumped > 20);
}
