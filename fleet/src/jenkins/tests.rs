use super::*;

const QUEUE: &str = include_str!("../../tests/fixtures/queue.json");
const COMPUTERS: &str = include_str!("../../tests/fixtures/computers.json");
const ONE: &str = include_str!("../../tests/fixtures/computer-one.json");
const JNLP: &str = include_str!("../../tests/fixtures/slave-agent.jnlp");
const JNLP_OLD: &str = include_str!("../../tests/fixtures/slave-agent-2.222.jnlp");

#[test]
fn queue_fixture() {
    let q = parse_queue(QUEUE).unwrap();
    assert_eq!(q.len(), 6);
    assert_eq!(q[0].id, 812);
    assert_eq!(
        q[0].why.as_deref(),
        Some("Waiting for next available executor on \u{2018}linux&&x64\u{2019}")
    );
    assert!(q[0].buildable && !q[0].pending);
    assert_eq!(q[0].in_queue_since_ms, Some(1_767_000_000_000));
    assert_eq!(q[0].task_label, None);
    assert_eq!(q[1].task_label.as_deref(), Some("gpu"));
    assert!(q[1].stuck);
    assert!(!q[2].buildable);
    assert_eq!(q[2].task_label, None);
    assert!(q[3].blocked);
    assert!(q[4].pending);
    assert_eq!(q[5].buildable_start_ms, None);
}

#[test]
fn computers_fixture() {
    let c = parse_computers(COMPUTERS).unwrap();
    assert_eq!(c.len(), 6);
    assert!(c[0].is_builtin());
    let a1 = &c[1];
    assert!(a1.connected && a1.is_certainly_idle());
    assert_eq!(a1.idle_executors(), 2);
    let b2 = &c[2];
    assert!(!b2.is_certainly_idle());
    assert_eq!(b2.busy_executors(), 1);
    let c3 = &c[3];
    assert!(c3.connected && c3.temporarily_offline);
    assert_eq!(
        parse_drain_message(c3.offline_cause_reason.as_deref().unwrap(), "ci-prod"),
        Some(1_767_000_100_000)
    );
    assert_eq!(
        parse_drain_message(c3.offline_cause_reason.as_deref().unwrap(), "ci"),
        None
    );
    let d4 = &c[4];
    assert!(!d4.connected);
    let tag = NodeTag::parse(d4.description.as_deref().unwrap()).unwrap();
    assert_eq!(tag.instance, None);
    assert_eq!(tag.pool, "linux");
    let s = &c[5];
    assert_eq!(s.executors, vec![None]);
    assert!(
        !s.is_certainly_idle(),
        "unknown executor state must count as busy"
    );
    assert!(NodeTag::parse("").is_none());
}

#[test]
fn one_computer_fixture() {
    let c = parse_computer(ONE).unwrap();
    assert_eq!(c.name, "nectr-linux-c3");
    assert!(c.temporarily_offline);
    assert!(parse_computer("{}").is_err());
    assert!(parse_computers("{\"busyExecutors\":0}").is_err());
    assert!(parse_computers("<html>").is_err());
}

#[test]
fn jnlp_secret_both_formats() {
    assert_eq!(
        parse_jnlp_secret(JNLP, "nectr-linux-a1").unwrap(),
        "3f9c0a1b2c3d4e5f60718293a4b5c6d7e8f90123456789abcdef0123456789ab"
    );
    assert_eq!(
        parse_jnlp_secret(JNLP_OLD, "nectr-linux-a1").unwrap(),
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
    );
    assert!(parse_jnlp_secret(JNLP, "other").is_err());
    assert!(parse_jnlp_secret("<jnlp></jnlp>", "x").is_err());
    assert!(parse_jnlp_secret("<jnlp><application-desc><argument>", "x").is_err());
}

#[test]
fn node_tag_round_trip() {
    let t = NodeTag {
        fleet: "ci".into(),
        pool: "linux".into(),
        token: "abc".into(),
        instance: Some("i-123".into()),
        created_ms: 42,
    };
    assert_eq!(NodeTag::parse(&t.render()), Some(t));
}

mod fuzz {
    use super::super::label;
    use super::super::why::classify;
    use super::*;
    use proptest::prelude::*;

    fn jenkinsish() -> impl Strategy<Value = String> {
        prop::collection::vec(
            prop_oneof![
                Just("&&".to_string()),
                Just("||".to_string()),
                Just("!".to_string()),
                Just("->".to_string()),
                Just("<->".to_string()),
                Just("(".to_string()),
                Just(")".to_string()),
                Just("\"".to_string()),
                Just("\\".to_string()),
                Just(" ".to_string()),
                Just("\u{2018}".to_string()),
                Just("\u{2019}".to_string()),
                Just("; ".to_string()),
                Just("Waiting for next available executor on ".to_string()),
                Just(" doesn\u{2019}t have label ".to_string()),
                Just(" is offline".to_string()),
                "[a-z0-9.:-]{1,6}",
                any::<char>().prop_map(|c| c.to_string()),
            ],
            0..24,
        )
        .prop_map(|v| v.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn parsers_never_panic(s in jenkinsish()) {
            let _ = classify(&s);
            if let Ok(e) = label::parse(&s) {
                // Canonical form re-parses to the same tree.
                prop_assert_eq!(label::parse(&e.canonical()).ok(), Some(e.clone()));
            }
            let _ = parse_jnlp_secret(&s, "x");
            let _ = parse_queue(&s);
            let _ = parse_computers(&s);
            let _ = NodeTag::parse(&s);
            let _ = parse_drain_message(&s, "ci");
            let _ = crate::config::load_str(&s, std::path::Path::new("/"));
            let _ = crate::util::parse_iso8601_ms(&s);
            let _ = crate::util::parse_duration_ms(&s);
        }
    }
}

#[test]
fn running_builds_come_from_current_executable() {
    let body = r#"{"computer":[{"_class":"hudson.slaves.SlaveComputer","displayName":"n1","numExecutors":3,"offline":false,"idle":false,
      "executors":[{"idle":false,"currentExecutable":{"_class":"org.jenkinsci.plugins.workflow.support.steps.ExecutorStepExecution$PlaceholderTask$PlaceholderExecutable","url":"http://ci/job/f/job/p/4/","fullDisplayName":"f » p #4"}},
                   {"idle":true,"currentExecutable":null},
                   {"idle":false,"currentExecutable":null},
                   {"idle":false,"currentExecutable":{"fullDisplayName":"free style #2"}}]}]}"#;
    let c = &parse_computers(body).unwrap()[0];
    assert_eq!(c.builds.len(), 2, "{:?}", c.builds);
    assert_eq!(c.builds[0].executor, 0);
    assert_eq!(c.builds[0].job, "f/p");
    assert_eq!(c.builds[0].url.as_deref(), Some("http://ci/job/f/job/p/4/"));
    assert_eq!(c.builds[1].executor, 3);
    assert_eq!(c.builds[1].job, "free style");
    // Without Item/Read the build is null: busy all the same, just not attributed.
    assert_eq!(c.busy_executors(), 3);
    assert!(COMPUTER_TREE.contains("currentExecutable[url,fullDisplayName]"));
}
