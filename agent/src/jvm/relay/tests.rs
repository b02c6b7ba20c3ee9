use super::*;
use crate::javaser::{self, ArrayData, Builder, ClassSpec, Item, Value};
use crate::remoting::frame::{self, ChunkReader};
use crate::remoting::rewrite::{exports, INVOCATION_HANDLER};
use crate::remoting::Event;
use std::cell::Cell;

fn registry() -> Registry {
    let mut reg = crate::remoting::classes::registry();
    reg.declare(
        ClassSpec::new(INVOCATION_HANDLER, 1)
            .write_method()
            .field("autoUnexportByCaller", "Z")
            .field("goingHome", "Z")
            .field("oid", "I")
            .field("recordCreatedAt", "Z")
            .field("userProxy", "Z")
            .field("userSpace", "Z")
            .field("origin", "Ljava/lang/Throwable;"),
    );
    reg.declare(
        ClassSpec::new(RPC_REQUEST, 1)
            .extends(REQUEST)
            .field("oid", "I")
            .field("arguments", "[Ljava/lang/Object;")
            .field("declaringClassName", "Ljava/lang/String;")
            .field("methodName", "Ljava/lang/String;"),
    );
    reg.declare(ClassSpec::new("plugin.Task", 1).field("n", "I"));
    reg
}

fn encode(b: Builder, v: Value) -> Vec<u8> {
    javaser::encode(&b.into_stream(vec![Item::Value(v)])).unwrap()
}

/// A proxy of an exported object: the sender's (`home` false) or the receiver's.
fn proxy(b: &mut Builder, oid: i32, home: bool) -> Value {
    let h = b
        .object(
            INVOCATION_HANDLER,
            &[
                ("oid", Value::Int(oid)),
                ("goingHome", Value::Boolean(home)),
            ],
        )
        .unwrap();
    b.set_data(h, INVOCATION_HANDLER, vec![]).unwrap();
    b.proxy(&["plugin.Api", "hudson.remoting.IReadResolve"], h)
        .unwrap()
}

/// A controller `UserRequest` (id `id`) whose callable is `nested`, as the channel hands it.
fn controller_call(reg: &Registry, id: i32, nested: Vec<u8>) -> Box<UserRequest> {
    let mut b = Builder::new(reg);
    let bytes = b.array("[B", ArrayData::Byte(nested)).unwrap();
    let loader = proxy(&mut b, 2, false);
    let r = b
        .object(
            USER_REQUEST,
            &[
                ("id", Value::Int(id)),
                ("lastIoId", Value::Int(7)),
                ("classLoaderProxy", loader),
                ("request", bytes),
            ],
        )
        .unwrap();
    let payload = encode(b, r);
    let mut ch = Channel::with_registry(reg.clone());
    let events = ch.receive(&frame::chunks(&payload).concat());
    match events.into_iter().next() {
        Some(Event::Call(req)) => req,
        other => panic!("{other:?}"),
    }
}

fn task(reg: &Registry, n: i32) -> Vec<u8> {
    let mut b = Builder::new(reg);
    let t = b.object("plugin.Task", &[("n", Value::Int(n))]).unwrap();
    encode(b, t)
}

/// The helper's `Response` to call `id`: a NormalResponse holding a proxy of its export `oid`.
fn helper_answer(reg: &Registry, id: i32, last_io: i32, oid: i32) -> Vec<u8> {
    let mut nb = Builder::new(reg);
    let p = proxy(&mut nb, oid, false);
    let nested = encode(nb, p);
    let mut b = Builder::new(reg);
    let arr = b.array("[B", ArrayData::Byte(nested)).unwrap();
    let holder = b.object(NORMAL_RESPONSE, &[("response", arr)]).unwrap();
    let r = b
        .object(
            RESPONSE,
            &[
                ("id", Value::Int(id)),
                ("lastIoId", Value::Int(last_io)),
                ("returnValue", holder),
            ],
        )
        .unwrap();
    encode(b, r)
}

/// The helper's direct RPC (id `id`) on the controller's export `oid`.
fn helper_rpc(reg: &Registry, id: i32, oid: i32) -> Vec<u8> {
    let mut b = Builder::new(reg);
    let m = b.string("fetch2");
    let r = b
        .object(
            RPC_REQUEST,
            &[
                ("id", Value::Int(id)),
                ("oid", Value::Int(oid)),
                ("methodName", m),
            ],
        )
        .unwrap();
    encode(b, r)
}

/// Everything the agent sent to the controller, parsed.
fn sent(ch: &mut Channel) -> Vec<Parsed> {
    let mut r = ChunkReader::new(1 << 26);
    r.push(&ch.take_frames().concat());
    let mut out = Vec::new();
    while let Some(c) = r.next_command().unwrap() {
        out.push(rewrite::parse(&c).unwrap());
    }
    out
}

struct Agent {
    ch: Channel,
    io: Cell<i32>,
}

impl Agent {
    fn new(reg: &Registry) -> Agent {
        Agent {
            ch: Channel::with_registry(reg.clone()),
            io: Cell::new(100),
        }
    }

    fn with<T>(&mut self, f: impl FnOnce(&mut Up<'_>) -> T) -> T {
        let io = &self.io;
        let next = move || {
            io.set(io.get() + 1);
            io.get()
        };
        let mut up = Up {
            channel: &mut self.ch,
            next_io: &next,
        };
        f(&mut up)
    }
}

#[test]
fn a_delegated_call_keeps_its_id_and_the_helpers_export_gets_a_visible_id() {
    let reg = registry();
    let mut relay = Relay::new();
    relay.start(1);
    let mut agent = Agent::new(&reg);
    let req = controller_call(&reg, 77, task(&reg, 1));
    let to_helper = relay.call(&req, "plugin.Task").unwrap();
    assert_eq!(
        to_helper, req.raw,
        "nothing to rewrite: the bytes go as they came"
    );
    assert!(!relay.is_quiet());
    let mut back = Vec::new();
    let next = agent.with(|up| relay.from_helper(helper_answer(&reg, 77, 0, 5), up, &mut back));
    assert_eq!(next, Ok(Next::Continue));
    assert!(back.is_empty());
    let out = sent(&mut agent.ch);
    assert_eq!(out.len(), 1);
    assert_eq!(
        (out[0].class.as_str(), out[0].int("id")),
        (RESPONSE, Some(77))
    );
    assert_eq!(
        exports(&out[0].stream),
        vec![(Owner::Sender, HELPER_OID_BASE + SPAN + 5)],
        "generation 1 shows helper oid 5 in slot 1"
    );
    assert!(relay.is_quiet());
}

#[test]
fn the_helpers_requests_get_agent_ids_and_their_answers_the_helpers() {
    let reg = registry();
    let mut relay = Relay::new();
    relay.start(1);
    let mut agent = Agent::new(&reg);
    // nectr's own request takes an id from the same counter first.
    let own = agent.ch.read_input(3, 10);
    let mut back = Vec::new();
    agent
        .with(|up| relay.from_helper(helper_rpc(&reg, 1, 2), up, &mut back))
        .unwrap();
    let out = sent(&mut agent.ch);
    let relayed = out[1].int("id").unwrap();
    assert_ne!(relayed, own);
    assert_eq!(
        out[1].int("oid"),
        Some(2),
        "the controller's export is not mapped"
    );
    assert!(!relay.is_quiet());
    // The controller answers: the channel hands the answer to the relay.
    let answer = command::plain_response(&reg, relayed, None);
    let events = agent.ch.receive(&frame::chunks(&answer).concat());
    let [Event::Relay(r)] = <[Event; 1]>::try_from(events).unwrap() else {
        unreachable!()
    };
    let to_helper = agent.with(|up| relay.from_controller(*r, up, true));
    assert_eq!(to_helper.len(), 1);
    assert_eq!(rewrite::parse(&to_helper[0]).unwrap().int("id"), Some(1));
    assert!(relay.is_quiet());
}

#[test]
fn a_proxy_going_home_is_mapped_back_and_a_stale_one_refused() {
    let reg = registry();
    let mut relay = Relay::new();
    relay.start(3);
    let visible = relay.visible(9).unwrap();
    let call_with = |oid: i32| {
        let mut b = Builder::new(&reg);
        let p = proxy(&mut b, oid, true);
        controller_call(&reg, 5, encode(b, p))
    };
    let payload = relay.call(&call_with(visible), "plugin.Task").unwrap();
    let p = rewrite::parse(&payload).unwrap();
    let found = exports(&p.stream);
    assert!(found.contains(&(Owner::Receiver, 9)), "{found:?}");
    // An id of generation 2 (stopped) or a native export is refused with a reason.
    let old = HELPER_OID_BASE + 2 * SPAN + 9;
    let e = relay.call(&call_with(old), "plugin.Task").unwrap_err();
    assert!(e.contains("stopped"), "{e}");
    let e = relay.call(&call_with(12), "plugin.Task").unwrap_err();
    assert!(e.contains("exported by nectr-agent itself"), "{e}");
}

#[test]
fn stream_writes_get_agent_io_ids_and_acks_go_to_the_writer() {
    let reg = registry();
    let mut relay = Relay::new();
    relay.start(1);
    let mut agent = Agent::new(&reg);
    let req = controller_call(&reg, 8, task(&reg, 1));
    relay.call(&req, "plugin.Task").unwrap();
    let mut back = Vec::new();
    for (hio, len) in [(1, 100usize), (2, 50)] {
        let c = command::stream_chunk(hio, 40, 8, &vec![7u8; len]);
        agent
            .with(|up| relay.from_helper(c, up, &mut back))
            .unwrap();
    }
    agent
        .with(|up| relay.from_helper(helper_answer(&reg, 8, 2, 3), up, &mut back))
        .unwrap();
    let out = sent(&mut agent.ch);
    let ios: Vec<i32> = out[..2].iter().map(|p| p.int("ioId").unwrap()).collect();
    assert_eq!(ios, vec![101, 102]);
    assert_eq!(
        out[2].int("lastIoId"),
        Some(102),
        "the helper's io 2 is the agent's 102"
    );
    // Acks: the helper's chunks, oldest first; a stream it never wrote is not its business.
    assert!(relay.ack(&reg, 41, 100, 0).is_none());
    assert!(
        relay.ack(&reg, 40, 50, 4096).is_none(),
        "native bytes pending: sizes must match"
    );
    assert!(relay.ack(&reg, 40, 100, 4096).is_some());
    assert!(relay.ack(&reg, 40, 50, 0).is_some());
    assert!(relay.ack(&reg, 40, 50, 0).is_none());
}

#[test]
fn a_dead_helper_answers_its_calls_and_closes_the_streams_it_wrote() {
    let reg = registry();
    let mut relay = Relay::new();
    relay.start(1);
    let mut agent = Agent::new(&reg);
    for id in [4, 6] {
        relay
            .call(&controller_call(&reg, id, task(&reg, id)), "plugin.Task")
            .unwrap();
    }
    let mut back = Vec::new();
    agent
        .with(|up| relay.from_helper(command::stream_chunk(1, 40, 4, b"abc"), up, &mut back))
        .unwrap();
    agent
        .with(|up| relay.from_helper(helper_rpc(&reg, 9, 2), up, &mut back))
        .unwrap();
    let _ = sent(&mut agent.ch);
    agent.with(|up| relay.ended(up, "died: it was killed by signal 9", true));
    assert!(relay.is_quiet());
    let out = sent(&mut agent.ch);
    let classes: Vec<&str> = out.iter().map(|p| p.class.as_str()).collect();
    assert_eq!(classes, vec![RESPONSE, RESPONSE, STREAM_EOF]);
    let text = String::from_utf8_lossy(&out[0].encode().unwrap()).to_string();
    assert!(
        text.contains("plugin.Task") && text.contains("killed by signal 9"),
        "{text}"
    );
    assert_eq!(out[2].int("oid"), Some(40));
}

#[test]
fn the_helpers_close_ends_it_and_its_pings_are_answered_here() {
    let reg = registry();
    let mut relay = Relay::new();
    relay.start(1);
    let mut agent = Agent::new(&reg);
    let mut back = Vec::new();
    let ping = command::ping_request(&reg, 3, 2, true);
    assert_eq!(
        agent.with(|up| relay.from_helper(ping, up, &mut back)),
        Ok(Next::Continue)
    );
    assert_eq!(back.len(), 1);
    assert_eq!(rewrite::parse(&back[0]).unwrap().int("id"), Some(3));
    assert!(
        sent(&mut agent.ch).is_empty(),
        "a ping never reaches the controller"
    );
    assert_eq!(
        agent.with(|up| relay.from_helper(command::close(&reg), up, &mut back)),
        Ok(Next::Closed)
    );
}

#[test]
fn a_thousand_interleaved_calls_and_helper_requests_never_mix_ids() {
    let reg = registry();
    let mut relay = Relay::new();
    relay.start(1);
    let mut agent = Agent::new(&reg);
    let mut back = Vec::new();
    let mut relayed = Vec::new();
    for i in 0..1000 {
        let id = 10_000 + i;
        relay
            .call(&controller_call(&reg, id, task(&reg, i)), "plugin.Task")
            .unwrap();
        // Every call makes the helper ask the controller something (class loading).
        agent
            .with(|up| relay.from_helper(helper_rpc(&reg, i + 1, 2), up, &mut back))
            .unwrap();
        relayed.push(sent(&mut agent.ch)[0].int("id").unwrap());
        if i % 3 == 0 {
            agent.ch.read_input(3, 1); // nectr's own requests in between
            let _ = sent(&mut agent.ch);
        }
    }
    let mut unique = relayed.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 1000);
    // Answers in reverse order reach the right helper request.
    for (i, id) in relayed.iter().enumerate().rev() {
        let answer = command::plain_response(&reg, *id, None);
        let events = agent.ch.receive(&frame::chunks(&answer).concat());
        let Some(Event::Relay(r)) = events.into_iter().next() else {
            panic!("not relayed")
        };
        let to = agent.with(|up| relay.from_controller(*r, up, true));
        assert_eq!(
            rewrite::parse(&to[0]).unwrap().int("id"),
            Some(i as i32 + 1)
        );
    }
    for i in (0..1000).rev() {
        agent
            .with(|up| relay.from_helper(helper_answer(&reg, 10_000 + i, 0, 1), up, &mut back))
            .unwrap();
        assert_eq!(sent(&mut agent.ch)[0].int("id"), Some(10_000 + i));
    }
    assert!(relay.is_quiet());
}

#[test]
fn what_cannot_be_passed_on_is_answered_with_an_error() {
    let reg = registry();
    let mut relay = Relay::new();
    relay.start(1);
    let mut agent = Agent::new(&reg);
    relay
        .call(&controller_call(&reg, 12, task(&reg, 1)), "plugin.Task")
        .unwrap();
    let mut back = Vec::new();
    // An export id beyond what one helper generation may use cannot be shown to the controller.
    let e = agent
        .with(|up| relay.from_helper(helper_answer(&reg, 12, 0, SPAN + 1), up, &mut back))
        .unwrap_err();
    assert!(e.contains("outside"), "{e}");
    let out = sent(&mut agent.ch);
    assert_eq!(
        (out.len(), out[0].int("id")),
        (1, Some(12)),
        "the call got an answer"
    );
    assert!(relay.is_quiet());
    // The same for a request of the helper: it gets an error, not silence.
    let mut b = Builder::new(&reg);
    let p = proxy(&mut b, SPAN + 2, false);
    let m = b.string("fetch2");
    let args = b
        .array("[Ljava.lang.Object;", ArrayData::Object(vec![p]))
        .unwrap();
    let r = b
        .object(
            RPC_REQUEST,
            &[
                ("id", Value::Int(5)),
                ("oid", Value::Int(2)),
                ("methodName", m),
                ("arguments", args),
            ],
        )
        .unwrap();
    let bad = encode(b, r);
    assert!(agent
        .with(|up| relay.from_helper(bad, up, &mut back))
        .is_err());
    assert_eq!(back.len(), 1);
    let answer = rewrite::parse(&back[0]).unwrap();
    assert_eq!(
        (answer.class.as_str(), answer.int("id")),
        (RESPONSE, Some(5))
    );
    assert!(answer.object("exception").is_some());
    assert!(
        sent(&mut agent.ch).is_empty(),
        "nothing reached the controller"
    );
    assert!(relay.is_quiet());
}

#[test]
fn whatever_the_helper_writes_never_panics_and_calls_stay_answerable() {
    use proptest::prelude::*;
    let reg = registry();
    let good = helper_answer(&reg, 12, 3, 5);
    let mut runner = proptest::test_runner::TestRunner::new(proptest::test_runner::Config {
        cases: 256,
        ..Default::default()
    });
    runner
        .run(
            &(
                proptest::collection::vec(any::<u8>(), 0..600),
                0..good.len(),
                any::<u8>(),
            ),
            |(noise, cut, flip)| {
                let mut relay = Relay::new();
                relay.start(1);
                let mut agent = Agent::new(&reg);
                relay
                    .call(&controller_call(&reg, 12, task(&reg, 1)), "plugin.Task")
                    .unwrap();
                let mut back = Vec::new();
                let mut truncated = good[..cut].to_vec();
                let mut flipped = good.clone();
                flipped[cut] ^= flip;
                for bytes in [noise, std::mem::take(&mut truncated), flipped] {
                    let _ = agent.with(|up| relay.from_helper(bytes, up, &mut back));
                }
                // Whatever happened, the call can still be ended with an answer.
                agent.with(|up| relay.ended(up, "died", true));
                prop_assert!(relay.is_quiet());
                Ok(())
            },
        )
        .unwrap();
}
