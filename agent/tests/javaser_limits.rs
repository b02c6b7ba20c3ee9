//! Limits and hostile input: errors, never panics, hangs or unbounded allocation.

use nectr_agent::javaser::{
    self, decode, encode, json, ArrayData, Builder, DecodeErrorKind, DecodeOptions, Limit, Limits,
    Registry,
};

/// `depth` nested `Object[]` arrays, innermost empty.
fn nested_arrays(depth: usize) -> Vec<u8> {
    let reg = Registry::new();
    let mut b = Builder::new(&reg);
    let mut v = b
        .array("[Ljava.lang.Object;", ArrayData::Object(vec![]))
        .unwrap();
    for _ in 1..depth {
        v = b
            .array("[Ljava.lang.Object;", ArrayData::Object(vec![v]))
            .unwrap();
    }
    let limits = Limits {
        max_depth: depth + 10,
        ..Limits::DEFAULT
    };
    let mut w = javaser::Encoder::new(b.heap()).with_limits(limits);
    w.value(v).unwrap_or_else(|e| panic!("{e}"));
    w.finish()
}

fn on_stack<T: Send + 'static>(bytes: usize, f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new()
        .stack_size(bytes)
        .spawn(f)
        .unwrap()
        .join()
        .unwrap()
}

#[test]
fn nesting_at_the_depth_limit_decodes_and_encodes_on_a_2_mib_stack() {
    // 2 MiB is the stack of tokio's worker threads and of Rust's spawned threads.
    let depth = Limits::DEFAULT.max_depth;
    let bytes = on_stack(8 << 20, move || nested_arrays(depth));
    let s = on_stack(2 << 20, move || {
        let s = decode(&bytes, &DecodeOptions::default()).expect("at the limit is allowed");
        assert_eq!(encode(&s).unwrap(), bytes);
        let _ = json::oracle_json(&s);
        s
    });
    // The debug view is for the CLI, which renders on a large stack.
    on_stack(32 << 20, move || json::debug_json(&s));
}

#[test]
fn nesting_beyond_the_depth_limit_is_a_typed_error() {
    let bytes = on_stack(8 << 20, || nested_arrays(Limits::DEFAULT.max_depth + 1));
    let e = decode(&bytes, &DecodeOptions::default()).unwrap_err();
    assert!(
        matches!(
            e.kind,
            DecodeErrorKind::Limit {
                limit: Limit::Depth,
                ..
            }
        ),
        "{e}"
    );
}
