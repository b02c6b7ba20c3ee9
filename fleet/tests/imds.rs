//! Instance-role credentials from IMDSv2 (`aws.credentials = "instance-role"`), against a fake
//! IMDS on 127.0.0.1: caching, refresh before expiry, token renewal, errors, secrets kept out
//! of every text, signing, and end to end with moto. Nothing here reaches beyond loopback.

mod support;

use nectr_fleet::cloud::credentials::{
    credential_source, CredentialSource, InstanceRoleCredentials, SharedCredentials,
};
use nectr_fleet::cloud::ec2::Ec2Provider;
use nectr_fleet::cloud::s3::{PutCondition, PutOutcome, S3Object};
use nectr_fleet::cloud::{CloudErrorKind, CloudProvider};
use nectr_fleet::config::{Config, CredentialsMode};
use nectr_fleet::reconcile::Reconciler;
use nectr_fleet::server::Shared;
use std::net::TcpListener;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::fake_imds::{creds_json, expiration_in, FakeImds, Recorder};
use support::fake_jenkins::FakeJenkins;
use support::moto::Moto;

const FAR: i64 = 6 * 3600;
/// Inside the 5-minute refresh window, but still valid.
const NEAR: i64 = 4 * 60;

fn answer(n: u32, expires_in: i64) -> String {
    creds_json(
        &format!("ASIAKEY{n}"),
        &format!("imds-secret-{n}-DO-NOT-PRINT"),
        &format!("imds-session-{n}-DO-NOT-PRINT"),
        &expiration_in(expires_in),
    )
}

fn source(imds: &FakeImds) -> InstanceRoleCredentials {
    InstanceRoleCredentials::new(&imds.url).expect("source")
}

/// No secret key, credential session token or IMDS token in `text`.
fn assert_no_secret(text: &str) {
    assert!(!text.contains("DO-NOT-PRINT"), "a secret leaked: {text}");
    assert!(
        !text.contains("imds-token-"),
        "the IMDS token leaked: {text}"
    );
}

#[test]
fn fetched_once_and_reused_while_fresh() {
    let imds = FakeImds::start();
    imds.serve(&[answer(1, FAR)]);
    let src = source(&imds);
    for _ in 0..5 {
        let c = src.current().expect("credentials");
        assert_eq!(c.access_key_id, "ASIAKEY1");
        assert_eq!(c.secret_access_key.expose(), "imds-secret-1-DO-NOT-PRINT");
        assert_eq!(
            c.session_token.as_ref().map(|t| t.expose()),
            Some("imds-session-1-DO-NOT-PRINT")
        );
        assert_no_secret(&format!("{c:?} {src:?}"));
    }
    let s = imds.lock();
    assert_eq!(
        (s.token_puts, s.role_gets, s.creds_gets, s.unauthorized),
        (1, 1, 1, 0),
        "{:?}",
        s.log
    );
}

#[test]
fn refreshed_when_within_five_minutes_of_expiry() {
    let imds = FakeImds::start();
    imds.serve(&[answer(1, NEAR), answer(2, FAR)]);
    let src = source(&imds);
    assert_eq!(src.current().expect("first").access_key_id, "ASIAKEY1");
    // Less than 5 minutes left: the next call fetches again and gets the new keys.
    assert_eq!(src.current().expect("refresh").access_key_id, "ASIAKEY2");
    for _ in 0..3 {
        assert_eq!(src.current().expect("cached").access_key_id, "ASIAKEY2");
    }
    let s = imds.lock();
    assert_eq!(s.creds_gets, 2, "{:?}", s.log);
    assert_eq!(s.role_gets, 2);
    assert_eq!(s.token_puts, 1, "the session token is reused");
}

#[test]
fn keys_that_stay_near_expiry_are_not_refetched_on_every_call() {
    let imds = FakeImds::start();
    imds.serve(&[answer(1, NEAR), answer(2, NEAR)]);
    let src = source(&imds);
    assert_eq!(src.current().expect("first").access_key_id, "ASIAKEY1");
    assert_eq!(src.current().expect("refresh").access_key_id, "ASIAKEY2");
    // IMDS has not rotated yet: the still-valid keys are used for a while without asking.
    for _ in 0..5 {
        assert_eq!(src.current().expect("cached").access_key_id, "ASIAKEY2");
    }
    assert_eq!(imds.lock().creds_gets, 2);
}

#[test]
fn revoked_session_token_is_replaced_after_401() {
    let imds = FakeImds::start();
    imds.serve(&[answer(1, NEAR), answer(2, FAR)]);
    let src = source(&imds);
    assert_eq!(src.current().expect("first").access_key_id, "ASIAKEY1");
    imds.revoke_tokens();
    assert_eq!(src.current().expect("refresh").access_key_id, "ASIAKEY2");
    let s = imds.lock();
    assert_eq!(s.unauthorized, 1, "{:?}", s.log);
    assert_eq!(s.token_puts, 2, "{:?}", s.log);
}

#[test]
fn session_token_about_to_expire_is_renewed_before_use() {
    let imds = FakeImds::start();
    // IMDS grants 2 s (and answers 401 after that): the token is used for half of it.
    imds.lock().token_ttl = 2;
    imds.serve(&[answer(1, NEAR), answer(2, FAR)]);
    let src = source(&imds);
    src.current().expect("first");
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(src.current().expect("refresh").access_key_id, "ASIAKEY2");
    let s = imds.lock();
    assert_eq!(s.token_puts, 2, "{:?}", s.log);
    assert_eq!(
        s.unauthorized, 0,
        "never sent an expired token: {:?}",
        s.log
    );
}

#[test]
fn concurrent_callers_share_one_refresh() {
    let imds = FakeImds::start();
    imds.serve(&[answer(1, FAR)]);
    imds.lock().creds_delay = Duration::from_millis(300);
    let src = Arc::new(source(&imds));
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let s = src.clone();
            std::thread::spawn(move || s.current().map(|c| c.access_key_id))
        })
        .collect();
    for t in threads {
        assert_eq!(t.join().expect("thread").expect("creds"), "ASIAKEY1");
    }
    let s = imds.lock();
    assert_eq!((s.token_puts, s.creds_gets), (1, 1), "{:?}", s.log);
}

#[test]
fn failure_code_is_a_clear_error() {
    let imds = FakeImds::start();
    imds.serve(&[r#"{"Code":"Failure","Message":"Instance profile is being updated","LastUpdated":"2026-11-22T06:00:00Z","SecretAccessKey":"imds-secret-9-DO-NOT-PRINT"}"#.to_string()]);
    let e = source(&imds).current().expect_err("failure");
    let text = e.to_string();
    assert_eq!(e.kind, CloudErrorKind::Transport, "retryable: {text}");
    assert_eq!(e.code, "ImdsCredentials");
    assert!(text.contains("Code \"Failure\""), "{text}");
    assert!(text.contains("nectr-fleet-role"), "names the role: {text}");
    assert!(text.contains("Instance profile is being updated"), "{text}");
    assert_no_secret(&format!("{text} {e:?}"));
}

#[test]
fn missing_role_is_a_clear_error() {
    let imds = FakeImds::start();
    imds.lock().role = None;
    let e = source(&imds).current().expect_err("no role");
    let text = e.to_string();
    assert_eq!(e.kind, CloudErrorKind::Transport);
    assert_eq!(e.code, "ImdsNoRole");
    assert!(text.contains("no instance role attached?"), "{text}");
    assert!(text.contains(&imds.url), "{text}");
    assert_no_secret(&format!("{text} {e:?}"));

    // A listing with no role name is the same problem.
    imds.lock().role = Some(String::new());
    let e = source(&imds).current().expect_err("empty role list");
    assert!(e.to_string().contains("no instance role attached?"), "{e}");
}

#[test]
fn unreachable_endpoint_is_a_clear_error() {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let e = InstanceRoleCredentials::new(&url)
        .expect("source")
        .current()
        .expect_err("refused");
    let text = e.to_string();
    assert_eq!(e.kind, CloudErrorKind::Transport);
    assert_eq!(e.code, "ImdsUnreachable");
    assert!(
        text.contains(&format!("IMDS unreachable at {url}")),
        "{text}"
    );
    assert!(
        text.contains("aws.imds_endpoint"),
        "says what to check: {text}"
    );
}

#[test]
fn silent_endpoint_times_out_after_two_seconds() {
    // Bound and listening, never answering: the connection is accepted by the kernel.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let t = Instant::now();
    let e = InstanceRoleCredentials::new(&url)
        .expect("source")
        .current()
        .expect_err("timeout");
    let took = t.elapsed();
    assert!(e.to_string().contains("IMDS unreachable at"), "{e}");
    assert!(
        took >= Duration::from_millis(1500) && took < Duration::from_secs(5),
        "took {took:?}"
    );
    drop(listener);
}

#[test]
fn a_failed_refresh_keeps_using_still_valid_keys_and_never_shows_secrets() {
    let imds = FakeImds::start();
    imds.serve(&[answer(1, NEAR)]);
    let src = source(&imds);
    src.current().expect("first");
    // The role goes away: the refresh fails, the cached keys (4 min left) stay in use.
    imds.lock().role = None;
    let c = src.current().expect("cached keys still valid");
    assert_eq!(c.access_key_id, "ASIAKEY1");
    assert_no_secret(&format!("{c:?} {src:?}"));

    // Keys already expired: nothing usable is cached, so the error comes through.
    let imds = FakeImds::start();
    imds.serve(&[answer(3, -60)]);
    let e = source(&imds).current().expect_err("expired");
    assert!(e.to_string().contains("expired at"), "{e}");
    assert_no_secret(&format!("{e} {e:?}"));
}

/// A config whose `[aws]` uses the instance role at `imds`.
fn instance_role_config(
    dir_name: &str,
    jenkins: &str,
    aws: &str,
    imds: &str,
) -> (std::path::PathBuf, Config) {
    let dir = support::temp_dir(dir_name);
    let text = support::config_text(dir_name, jenkins, aws, "", "").replace(
        "[aws]\n",
        &format!("[aws]\ncredentials = \"instance-role\"\nimds_endpoint = \"{imds}\"\n"),
    );
    let (path, cfg) = support::write_config(&dir, &text);
    assert_eq!(cfg.aws.credentials, CredentialsMode::InstanceRole);
    (path, cfg)
}

#[test]
fn ec2_and_s3_sign_every_request_with_the_current_imds_keys() {
    let imds = FakeImds::start();
    imds.serve(&[answer(1, NEAR), answer(2, FAR)]);
    let ec2_peer =
        Recorder::start("<DescribeInstancesResponse><reservationSet/></DescribeInstancesResponse>");
    let s3_peer = Recorder::start("");
    let (_, cfg) = instance_role_config(
        "imds-sign",
        "https://ci.example.com/",
        &ec2_peer.url,
        &imds.url,
    );
    let creds: SharedCredentials = credential_source(&cfg.aws).expect("source");
    assert!(
        imds.lock().log.is_empty(),
        "building the source contacts nothing"
    );
    let ec2 = Ec2Provider::new(&cfg.aws, creds.clone()).expect("ec2");
    let s3 = S3Object::new(
        Some(&s3_peer.url),
        "us-east-1",
        "bucket",
        "key",
        creds.clone(),
        5_000,
        None,
    )
    .expect("s3");

    assert!(ec2
        .describe_owned("imds-sign")
        .expect("describe")
        .is_empty());
    // Key 1 had less than 5 minutes left: the second call signs with the refreshed key 2.
    ec2.describe_owned("imds-sign").expect("describe");
    assert_eq!(s3.get().expect("get"), None);
    assert!(matches!(
        s3.put(b"{}", &PutCondition::Absent).expect("put"),
        PutOutcome::Written { .. }
    ));
    let e = ec2_peer.signers();
    assert_eq!(
        e,
        vec![
            (
                "ASIAKEY1".to_string(),
                "imds-session-1-DO-NOT-PRINT".to_string()
            ),
            (
                "ASIAKEY2".to_string(),
                "imds-session-2-DO-NOT-PRINT".to_string()
            ),
        ]
    );
    let s = s3_peer.signers();
    assert_eq!(s.len(), 2);
    assert!(
        s.iter()
            .all(|(k, t)| k == "ASIAKEY2" && t == "imds-session-2-DO-NOT-PRINT"),
        "{s:?}"
    );
    assert_eq!(imds.lock().creds_gets, 2, "EC2 and S3 share one cache");
    assert_no_secret(&format!("{ec2:?} {s3:?} {creds:?}"));

    // IMDS errors reach the caller as the cloud call's error, retryable.
    let imds2 = FakeImds::start();
    imds2.lock().role = None;
    let (_, cfg2) = instance_role_config(
        "imds-sign2",
        "https://ci.example.com/",
        &ec2_peer.url,
        &imds2.url,
    );
    let ec2 =
        Ec2Provider::new(&cfg2.aws, credential_source(&cfg2.aws).expect("source")).expect("ec2");
    let e = ec2.describe_owned("x").expect_err("no role");
    assert_eq!(e.kind, CloudErrorKind::Transport);
    assert!(e.message.starts_with("DescribeInstances: "), "{e}");
    assert!(e.message.contains("no instance role attached?"), "{e}");
    assert_eq!(ec2_peer.signers().len(), 2, "nothing unsigned was sent");
}

#[test]
fn fleet_launches_on_moto_with_instance_role_credentials() {
    let imds = FakeImds::start();
    let jenkins = FakeJenkins::start();
    let moto = Moto::start();
    let (path, cfg) = instance_role_config("imds-moto", &jenkins.url, &moto.url, &imds.url);
    let creds = credential_source(&cfg.aws).expect("source");
    let ec2 = Arc::new(Ec2Provider::new(&cfg.aws, creds.clone()).expect("ec2"));
    let mut rec = Reconciler::new(
        cfg.clone(),
        Some(path),
        ec2.clone(),
        Arc::new(Shared::default()),
    )
    .expect("reconciler");
    jenkins.set_queue_waiting(6, "linux");
    let rep = rec.poll_once(true);
    assert!(rep.errors.is_empty(), "{:?}", rep.errors);
    let live: Vec<_> = ec2
        .describe_owned("imds-moto")
        .expect("describe")
        .into_iter()
        .filter(|i| i.is_live())
        .collect();
    assert_eq!(live.len(), 2, "6 executors / 4 per instance");
    ec2.terminate(&[live[0].id.clone()]).expect("terminate");

    // The lease's S3 object on the same credential source.
    let s3 = S3Object::new(
        cfg.aws.endpoint.as_deref(),
        &cfg.aws.region,
        "nectr-imds",
        "imds-moto/lease.json",
        creds,
        5_000,
        None,
    )
    .expect("s3");
    s3.create_bucket().expect("bucket");
    assert!(matches!(
        s3.put(b"{\"x\":1}", &PutCondition::Absent).expect("put"),
        PutOutcome::Written { .. }
    ));
    assert_eq!(
        s3.get().expect("get").map(|(b, _)| b),
        Some(b"{\"x\":1}".to_vec())
    );

    let s = imds.lock();
    assert_eq!(
        (s.token_puts, s.role_gets, s.creds_gets),
        (1, 1, 1),
        "one fetch for every EC2 and S3 call: {:?}",
        s.log
    );
}

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_nectr-fleet"));
    // Static keys in the environment must be ignored with the instance role.
    c.env("AWS_ACCESS_KEY_ID", "ENVKEY")
        .env("AWS_SECRET_ACCESS_KEY", "env-secret")
        .env_remove("AWS_EC2_METADATA_SERVICE_ENDPOINT");
    c
}

#[test]
fn check_names_the_source_without_contacting_imds_and_plan_reports_imds_errors() {
    let imds = FakeImds::start();
    let (path, _) = instance_role_config(
        "imds-cli",
        "https://ci.example.com/",
        "http://127.0.0.1:1/",
        &imds.url,
    );
    let out = bin()
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!(
            "aws credentials: instance role, from the instance metadata service at {}",
            imds.url
        )),
        "{stdout}"
    );
    assert!(imds.lock().log.is_empty(), "check contacts nothing");

    // plan with the role missing: the poll fails with the clear error, and EC2 is never
    // called with the environment's keys.
    imds.lock().role = None;
    let jenkins = FakeJenkins::start();
    let text = std::fs::read_to_string(&path)
        .expect("read")
        .replace("https://ci.example.com/", &jenkins.url);
    std::fs::write(&path, text).expect("write");
    let out = bin()
        .args(["plan", "--config"])
        .arg(&path)
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("no instance role attached?"), "{stderr}");
    assert!(stderr.contains("DescribeInstances"), "{stderr}");
    assert!(imds.lock().role_gets >= 1);
}
