//! Property tests: random graphs round-trip exactly; random bytes, truncations and bit flips
//! give errors, never panics; every limit is enforced with its typed error.

use nectr_agent::javaser::{
    decode, encode, json, ArrayData, Builder, DecodeErrorKind, DecodeOptions, Item, Limit, Limits,
    Registry, Value,
};
use proptest::prelude::*;

/// A random value tree, turned into a graph by [`build`].
#[derive(Clone, Debug)]
enum Tree {
    Int(i32),
    Long(i64),
    Str(String),
    Bytes(Vec<u8>),
    Ints(Vec<i32>),
    List(Vec<Tree>),
    Map(Vec<(i32, Tree)>),
    Objects(Vec<Tree>),
    /// A reference back to an earlier built value (shared object), by index.
    Back(usize),
}

fn tree() -> impl Strategy<Value = Tree> {
    let leaf = prop_oneof![
        any::<i32>().prop_map(Tree::Int),
        any::<i64>().prop_map(Tree::Long),
        "\\PC{0,40}".prop_map(Tree::Str),
        proptest::collection::vec(any::<u8>(), 0..64).prop_map(Tree::Bytes),
        proptest::collection::vec(any::<i32>(), 0..16).prop_map(Tree::Ints),
        (0usize..8).prop_map(Tree::Back),
    ];
    leaf.prop_recursive(5, 48, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Tree::List),
            proptest::collection::vec((any::<i32>(), inner.clone()), 0..5).prop_map(Tree::Map),
            proptest::collection::vec(inner, 0..6).prop_map(Tree::Objects),
        ]
    })
}

fn build(b: &mut Builder, t: &Tree, built: &mut Vec<Value>) -> Value {
    let v = match t {
        Tree::Int(i) => b.integer(*i).unwrap(),
        Tree::Long(l) => b.long(*l).unwrap(),
        Tree::Str(s) => b.string(s),
        Tree::Bytes(v) => b.array("[B", ArrayData::Byte(v.clone())).unwrap(),
        Tree::Ints(v) => b.array("[I", ArrayData::Int(v.clone())).unwrap(),
        Tree::Back(i) => return built.get(*i).copied().unwrap_or(Value::Null),
        Tree::List(items) => {
            let vals: Vec<Value> = items.iter().map(|t| build(b, t, built)).collect();
            b.array_list(&vals).unwrap()
        }
        Tree::Map(entries) => {
            let vals: Vec<(Value, Value)> = entries
                .iter()
                .map(|(k, t)| (b.integer(*k).unwrap(), build(b, t, built)))
                .collect();
            b.hash_map(&vals).unwrap()
        }
        Tree::Objects(items) => {
            let vals: Vec<Value> = items.iter().map(|t| build(b, t, built)).collect();
            b.array("[Ljava.lang.Object;", ArrayData::Object(vals))
                .unwrap()
        }
    };
    built.push(v);
    v
}

fn stream_bytes(trees: &[Tree]) -> Vec<u8> {
    let reg = Registry::with_jdk();
    let mut b = Builder::new(&reg);
    let mut built = Vec::new();
    let items: Vec<Item> = trees
        .iter()
        .map(|t| Item::Value(build(&mut b, t, &mut built)))
        .collect();
    encode(&b.into_stream(items)).unwrap()
}

fn small_limits() -> DecodeOptions {
    DecodeOptions {
        limits: Limits {
            max_total_bytes: 1 << 20,
            max_depth: 32,
            ..Limits::DEFAULT
        },
        ..DecodeOptions::default()
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_graphs_round_trip_byte_for_byte(trees in proptest::collection::vec(tree(), 1..4)) {
        let bytes = stream_bytes(&trees);
        let s = decode(&bytes, &DecodeOptions::default()).unwrap();
        prop_assert_eq!(encode(&s).unwrap(), bytes);
    }

    #[test]
    fn random_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..512), header in any::<bool>()) {
        let mut bytes = if header { vec![0xac, 0xed, 0, 5] } else { vec![] };
        bytes.extend(body);
        nectr_agent::javaser::fuzz_roundtrip(&bytes);
    }

    #[test]
    fn random_bytes_through_the_remoting_channel_never_panic(body in proptest::collection::vec(any::<u8>(), 0..2048)) {
        nectr_agent::remoting::fuzz_channel(&body);
    }

    #[test]
    fn framed_random_streams_through_the_remoting_channel_never_panic(
        trees in proptest::collection::vec(tree(), 1..3),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), 0u8..8), 0..3),
    ) {
        let mut bytes = stream_bytes(&trees);
        for (i, bit) in flips {
            let i = i.index(bytes.len());
            bytes[i] ^= 1 << bit;
        }
        let mut data = vec![7u8];
        data.extend(nectr_agent::remoting::frame::chunks(&bytes).concat());
        nectr_agent::remoting::fuzz_channel(&data);
    }

    #[test]
    fn truncations_are_errors_or_valid_prefixes(trees in proptest::collection::vec(tree(), 1..3), cut in any::<prop::sample::Index>()) {
        let bytes = stream_bytes(&trees);
        let n = cut.index(bytes.len());
        match decode(&bytes[..n], &small_limits()) {
            // A cut between top-level items leaves a shorter valid stream.
            Ok(s) => prop_assert_eq!(encode(&s).unwrap(), &bytes[..n]),
            Err(e) => prop_assert!(e.offset <= n, "offset {} beyond input {}", e.offset, n),
        }
    }

    #[test]
    fn bit_flips_never_panic_and_what_decodes_reencodes_stably(
        trees in proptest::collection::vec(tree(), 1..3),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), 0u8..8), 1..4),
    ) {
        let mut bytes = stream_bytes(&trees);
        for (i, bit) in flips {
            let i = i.index(bytes.len());
            bytes[i] ^= 1 << bit;
        }
        if let Ok(s) = decode(&bytes, &small_limits()) {
            // Whatever decodes must encode to something that decodes to the same values.
            if let Ok(again) = encode(&s) {
                let s2 = decode(&again, &small_limits()).unwrap();
                prop_assert_eq!(json::oracle_json(&s2), json::oracle_json(&s));
            }
        }
    }
}

fn limit_of(bytes: &[u8], limits: Limits) -> Option<Limit> {
    match decode(
        bytes,
        &DecodeOptions {
            limits,
            ..DecodeOptions::default()
        },
    ) {
        Err(e) => match e.kind {
            DecodeErrorKind::Limit { limit, .. } => Some(limit),
            _ => None,
        },
        Ok(_) => None,
    }
}

#[test]
fn each_limit_is_enforced_with_its_typed_error() {
    let d = Limits::DEFAULT;
    // An int[] of 1000 elements.
    let ints = stream_bytes(&[Tree::Ints(vec![7; 1000])]);
    assert_eq!(
        limit_of(
            &ints,
            Limits {
                max_array_len: 999,
                ..d
            }
        ),
        Some(Limit::ArrayLength)
    );
    assert_eq!(
        limit_of(
            &ints,
            Limits {
                max_total_bytes: 100,
                ..d
            }
        ),
        Some(Limit::TotalBytes)
    );
    // A long string.
    let long = stream_bytes(&[Tree::Str("x".repeat(70_000))]);
    assert_eq!(
        limit_of(
            &long,
            Limits {
                max_string_len: 65_536,
                ..d
            }
        ),
        Some(Limit::StringLength)
    );
    // Many handles: a list of 100 strings.
    let many = stream_bytes(&[Tree::List(
        (0..100).map(|i| Tree::Str(i.to_string())).collect(),
    )]);
    assert_eq!(
        limit_of(
            &many,
            Limits {
                max_handles: 50,
                ..d
            }
        ),
        Some(Limit::Handles)
    );
    // Nesting.
    let mut t = Tree::Int(1);
    for _ in 0..20 {
        t = Tree::Objects(vec![t]);
    }
    let deep = stream_bytes(&[t]);
    assert_eq!(
        limit_of(&deep, Limits { max_depth: 10, ..d }),
        Some(Limit::Depth)
    );
    // A block-data record.
    let mut block = vec![0xac, 0xed, 0, 5, 0x7a, 0, 0, 0x10, 0];
    block.extend(vec![0u8; 4096]);
    assert_eq!(
        limit_of(
            &block,
            Limits {
                max_block_len: 4095,
                ..d
            }
        ),
        Some(Limit::BlockLength)
    );
}

#[test]
fn a_huge_declared_length_is_refused_before_allocating() {
    // int[] claiming 2^31-1 elements in a 30-byte input.
    let mut b = vec![0xac, 0xed, 0, 5, 0x75, 0x72, 0, 2, b'[', b'I'];
    b.extend_from_slice(&5600894804908749477i64.to_be_bytes());
    b.extend_from_slice(&[2, 0, 0, 0x78, 0x70, 0x7f, 0xff, 0xff, 0xff]);
    let e = decode(
        &b,
        &DecodeOptions {
            limits: Limits {
                max_array_len: usize::MAX,
                ..Limits::DEFAULT
            },
            ..DecodeOptions::default()
        },
    )
    .unwrap_err();
    assert!(
        matches!(e.kind, DecodeErrorKind::LengthBeyondInput { .. }),
        "{e}"
    );
}
