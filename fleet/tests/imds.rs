//! Instance-role credentials from IMDSv2 (`aws.credentials = "instance-role"`, the AWS SDK's
//! IMDS provider) against a fake IMDS on 127.0.0.1: EC2 and S3 sign with its keys, errors are
//! clear and hold no secret, end to end with moto, and `check`/`plan` from the command line.
//! The SDK's own caching and refresh are the SDK's (tested there). Nothing here reaches beyond
//! loopback.

mod support;

use nectr_fleet::cloud::credentials::{credential_source, SharedCredentials};
use nectr_fleet::cloud::ec2::Ec2Provider;
use nectr_fleet::cloud::s3::{PutCondition, PutOutcome, S3Object};
use nectr_fleet::cloud::{CloudErrorKind, CloudProvider};
use nectr_fleet::config::{Config, CredentialsMode};
use nectr_fleet::reconcile::Reconciler;
use nectr_fleet::server::Shared;
use std::process::Command;
use std::sync::Arc;
use support::fake_imds::{creds_json, expiration_in, FakeImds, Recorder};
use support::fake_jenkins::FakeJenkins;
use support::moto::Moto;

const FAR: i64 = 6 * 3600;

fn answer(n: u32, expires_in: i64) -> String {
    creds_json(
        &format!("ASIAKEY{n}"),
        &format!("imds-secret-{n}-DO-NOT-PRINT"),
        &format!("imds-session-{n}-DO-NOT-PRINT"),
        &expiration_in(expires_in),
    )
}

/// No secret key, credential session token or IMDS token in `text`.
fn assert_no_secret(text: &str) {
    assert!(!text.contains("DO-NOT-PRINT"), "a secret leaked: {text}");
    assert!(
        !text.contains("imds-token-"),
        "the IMDS token leaked: {text}"
    );
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
    imds.serve(&[answer(1, FAR)]);
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
    let mut s3_aws = cfg.aws.clone();
    s3_aws.endpoint = Some(s3_peer.url.clone());
    let s3 = S3Object::new(&s3_aws, "bucket", "key", creds.clone()).expect("s3");

    assert!(ec2
        .describe_owned("imds-sign")
        .expect("describe")
        .is_empty());
    ec2.describe_owned("imds-sign").expect("describe");
    assert_eq!(s3.get().expect("get"), None);
    assert!(matches!(
        s3.put(b"{}", &PutCondition::Absent).expect("put"),
        PutOutcome::Written { .. }
    ));
    let key1 = (
        "ASIAKEY1".to_string(),
        "imds-session-1-DO-NOT-PRINT".to_string(),
    );
    assert_eq!(ec2_peer.signers(), vec![key1.clone(), key1.clone()]);
    assert_eq!(s3_peer.signers(), vec![key1.clone(), key1]);
    assert!(
        imds.lock().creds_gets >= 1,
        "the keys came from the metadata service"
    );
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
    assert!(e.message.starts_with("DescribeInstances: cannot get AWS credentials (instance role, from the metadata service at http://127.0.0.1:"), "{e}");
    assert_no_secret(&e.message);
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
    let s3 = S3Object::new(&cfg.aws, "nectr-imds", "imds-moto/lease.json", creds).expect("s3");
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
    // Cached by the SDK: at most one fetch per client configuration (EC2+SSM, S3), not one
    // per call.
    assert!(
        (1..=2).contains(&s.creds_gets),
        "keys fetched once per client, not per call: {:?}",
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
            "aws credentials: instance role, from the metadata service at {} (not contacted by check)",
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
    assert!(
        stderr.contains("DescribeInstances: cannot get AWS credentials (instance role"),
        "{stderr}"
    );
    assert!(!stderr.contains("ENVKEY"), "{stderr}");
    assert!(imds.lock().role_gets >= 1);
}
