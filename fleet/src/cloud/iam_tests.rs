//! `fleet/iam/fleet-policy.json` against the code: every AWS call the fleet makes is allowed,
//! nothing more broadly than it needs, and the agents' secrets only under `/nectr/agents/`.

use serde_json::Value;
use std::collections::BTreeSet;

const POLICY: &str = include_str!("../../iam/fleet-policy.json");
const EC2_RS: &str = include_str!("ec2.rs");
const S3_RS: &str = include_str!("s3.rs");
const ASG_RS: &str = include_str!("asg.rs");
/// Calls made only by tests (a bucket for the lease).
const TEST_ONLY: [&str; 1] = ["s3:CreateBucket"];
const SECRETS: &str = "arn:aws:ssm:*:*:parameter/nectr/agents/*";

/// The string arguments of `marker("...")` in `src`.
fn quoted_after<'a>(src: &'a str, marker: &str) -> Vec<&'a str> {
    src.match_indices(marker)
        .filter_map(|(i, m)| {
            let rest = &src[i + m.len()..];
            let end = rest.find('"')?;
            Some(&rest[..end])
        })
        .collect()
}

/// Every IAM action the cloud code calls, read off its `Call` names.
fn actions_called() -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for a in quoted_after(EC2_RS, "self.call(\"") {
        out.insert(format!("ec2:{a}"));
    }
    for a in quoted_after(EC2_RS, "self.ssm_call(\"") {
        out.insert(format!("ssm:{a}"));
    }
    for a in quoted_after(ASG_RS, "self.asg_call(\"") {
        out.insert(format!("autoscaling:{a}"));
    }
    for a in quoted_after(ASG_RS, "self.call(\"") {
        out.insert(format!("ec2:{a}"));
    }
    for a in quoted_after(S3_RS, "self.call(\"S3 ") {
        out.insert(format!("s3:{a}"));
    }
    // Implied by RunInstances: tags in TagSpecifications, and a pool's instance profile.
    out.insert("ec2:CreateTags".into());
    out.insert("iam:PassRole".into());
    for t in TEST_ONLY {
        out.remove(t);
    }
    out
}

fn list(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a
            .iter()
            .filter_map(|x| x.as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    }
}

#[test]
fn iam_policy_allows_every_call_and_scopes_the_secrets() {
    let policy: Value = serde_json::from_str(POLICY).expect("fleet-policy.json is valid JSON");
    assert_eq!(policy["Version"], "2012-10-17");
    let statements = policy["Statement"].as_array().expect("Statement list");
    let mut allowed = BTreeSet::new();
    for st in statements {
        let sid = st["Sid"].as_str().unwrap_or("?");
        assert_eq!(st["Effect"], "Allow", "{sid}");
        let actions = list(&st["Action"]);
        let resources = list(&st["Resource"]);
        assert!(!actions.is_empty() && !resources.is_empty(), "{sid}");
        for a in &actions {
            assert!(
                !a.contains('*'),
                "{sid}: action {a} is a wildcard; name each call"
            );
            if [
                "ssm:PutParameter",
                "ssm:DeleteParameter",
                "ssm:AddTagsToResource",
            ]
            .contains(&a.as_str())
            {
                assert_eq!(resources, vec![SECRETS.to_string()], "{sid}: {a}");
            }
            if a == "ssm:GetParameter" {
                assert!(
                    !resources.iter().any(|r| r.contains("/nectr/agents")),
                    "{sid}: the fleet never reads a secret back"
                );
            }
            allowed.insert(a.clone());
        }
    }
    let called = actions_called();
    assert!(
        called.len() >= 10,
        "the call names were not found in the sources: {called:?}"
    );
    let missing: Vec<_> = called.difference(&allowed).collect();
    assert!(missing.is_empty(), "not allowed by the policy: {missing:?}");
    let unused: Vec<_> = allowed.difference(&called).collect();
    assert!(unused.is_empty(), "allowed but never called: {unused:?}");
}
