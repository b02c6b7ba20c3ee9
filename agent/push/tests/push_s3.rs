//! nectr-agent push / fetch against moto on 127.0.0.1: a 200 MB multipart push (into the
//! underscore bucket nectr_deploy) fetched back byte for byte, an interrupted push resumed,
//! checksums on every request, a missing bucket, missing credentials, the instance role
//! through IMDSv2, and usage errors.

mod support;

use support::*;

const BUCKET: &str = "nectr_deploy";

fn manifest_objects(m: &serde_json::Value) -> &Vec<serde_json::Value> {
    m["objects"].as_array().expect("objects")
}

#[test]
fn a_200_mb_push_is_multipart_and_comes_back_identical_then_is_skipped() {
    let moto = Moto::start();
    moto.create_bucket(BUCKET);
    let home = scratch("200mb");
    std::fs::create_dir_all(home.join("dist")).unwrap();
    let sha = random_file(&home.join("dist/app.tar.gz"), 200_000_000, 42);
    std::fs::write(home.join("dist/notes.txt"), b"release notes\n").unwrap();

    let started = std::time::Instant::now();
    let o = with_keys(&mut push_command(&home))
        .env("JOB_NAME", "folder/app")
        .env("BUILD_NUMBER", "17")
        .args(["push", "--bucket", BUCKET, "--endpoint-url", &moto.url])
        .args(["--progress", "plain", "--manifest", "pushed.json", "dist/*"])
        .output()
        .unwrap();
    let secs = started.elapsed().as_secs_f64();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    eprintln!(
        "200 MB push against moto: {secs:.1} s, {:.1} MB/s (not asserted)",
        200.0 / secs
    );
    let err = String::from_utf8_lossy(&o.stderr);
    // Plain progress lines in a log: the tenths, then the summary.
    assert!(err.contains("dist/app.tar.gz: 50% ("), "{err}");
    assert!(
        err.contains("pushed dist/app.tar.gz -> s3://nectr_deploy/folder/app/17/dist/app.tar.gz"),
        "{err}"
    );
    assert!(!err.contains("push-secret-DO-NOT-PRINT"));

    let m = read_json(&home.join("pushed.json"));
    assert_eq!(m["ok"], true);
    assert_eq!(m["bucket"], BUCKET);
    let objs = manifest_objects(&m);
    assert_eq!(objs.len(), 2);
    let big = &objs[0];
    assert_eq!(big["path"], "dist/app.tar.gz");
    assert_eq!(big["key"], "folder/app/17/dist/app.tar.gz");
    assert_eq!(big["status"], "pushed");
    assert_eq!(big["size"], 200_000_000);
    assert_eq!(big["sha256"], sha.as_str());
    assert_eq!(big["parts"], 12, "200 MB in 16 MiB parts");
    assert_eq!(big["content_type"], "application/gzip");
    // Path-style: the underscore cannot be a host name.
    assert_eq!(
        big["url"],
        format!("{}/nectr_deploy/folder/app/17/dist/app.tar.gz", moto.url)
    );
    assert_eq!(objs[1]["status"], "pushed");
    assert_eq!(objs[1]["parts"], 1);

    // What S3 holds is the file, and it carries the file's SHA-256.
    let (status, body) = moto.get(BUCKET, "folder/app/17/dist/app.tar.gz");
    assert_eq!(status, 200);
    assert_eq!(body.len(), 200_000_000);
    assert_eq!(sha256_hex(&body), sha);
    drop(body);
    let (_, h, _) = http(
        &format!("{}/{BUCKET}/folder/app/17/dist/app.tar.gz", moto.url),
        "HEAD",
        b"",
    );
    assert_eq!(
        h.get("x-amz-meta-sha256").map(String::as_str),
        Some(sha.as_str())
    );
    assert_eq!(moto.uploads(BUCKET), 0, "no upload left open");

    // The same files again: nothing is sent.
    let o = with_keys(&mut push_command(&home))
        .env("JOB_NAME", "folder/app")
        .env("BUILD_NUMBER", "17")
        .args(["push", "--bucket", BUCKET, "--endpoint-url", &moto.url])
        .args(["--manifest", "-", "dist/app.tar.gz", "dist/notes.txt"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let m: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    for obj in manifest_objects(&m) {
        assert_eq!(obj["status"], "unchanged", "{m}");
    }

    // fetch: a glob over keys, into another directory, verified against x-amz-meta-sha256.
    let out = home.join("fetched");
    let o = with_keys(&mut push_command(&home))
        .args(["fetch", "--bucket", BUCKET, "--endpoint-url", &moto.url])
        .args(["--to", out.to_str().unwrap(), "--manifest", "fetched.json"])
        .arg("folder/app/17/**/*.tar.gz")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let m = read_json(&home.join("fetched.json"));
    assert_eq!(m["ok"], true);
    assert_eq!(manifest_objects(&m).len(), 1, "{m}");
    assert_eq!(m["objects"][0]["status"], "fetched");
    assert_eq!(m["objects"][0]["sha256"], sha.as_str());
    let fetched = out.join("dist/app.tar.gz");
    assert_eq!(std::fs::metadata(&fetched).unwrap().len(), 200_000_000);
    assert_eq!(
        support::sha256_hex(&std::fs::read(&fetched).unwrap()),
        sha,
        "fetched bytes differ"
    );
    let leftovers: Vec<_> = std::fs::read_dir(out.join("dist"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(leftovers.len(), 1, "no temporary file left: {leftovers:?}");
    // Again: the file is already here.
    let o = with_keys(&mut push_command(&home))
        .args(["fetch", "--bucket", BUCKET, "--endpoint-url", &moto.url])
        .args(["--to", out.to_str().unwrap(), "--manifest", "-"])
        .arg("folder/app/17/**/*.tar.gz")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let m: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(m["objects"][0]["status"], "unchanged", "{m}");
    // A plain key lands under its own name.
    let o = with_keys(&mut push_command(&home))
        .args(["fetch", "--bucket", BUCKET, "--endpoint-url", &moto.url])
        .args(["--to", out.to_str().unwrap()])
        .arg("folder/app/17/dist/notes.txt")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(
        std::fs::read(out.join("notes.txt")).unwrap(),
        b"release notes\n"
    );
    let _ = std::fs::remove_dir_all(&home);
}

#[test]
fn every_upload_carries_a_sha256_for_s3_to_verify() {
    let moto = Moto::start();
    moto.create_bucket("nectr-deploy");
    let proxy = Proxy::start(&moto.url, None);
    let home = scratch("checksums");
    let sha_big = random_file(&home.join("big.bin"), 12 << 20, 7);
    std::fs::write(home.join("small.bin"), b"small").unwrap();
    let o = with_keys(&mut push_command(&home))
        .args([
            "push",
            "--bucket",
            "nectr-deploy",
            "--endpoint-url",
            &proxy.url,
        ])
        .args(["--key", "fixed/{name}", "--part-size-mib", "5", "-j", "2"])
        .args(["big.bin", "small.bin"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let seen = proxy.seen();
    let puts: Vec<&Seen> = seen.iter().filter(|s| s.method == "PUT").collect();
    assert_eq!(puts.len(), 4, "3 parts + 1 object: {seen:#?}");
    for p in &puts {
        assert_eq!(
            p.headers.get("x-amz-checksum-sha256"),
            Some(&p.body_sha256_b64),
            "{} {} has no (or a wrong) x-amz-checksum-sha256",
            p.method,
            p.target
        );
    }
    let create = seen
        .iter()
        .find(|s| s.method == "POST" && s.target.ends_with("?uploads"))
        .expect("CreateMultipartUpload");
    assert_eq!(
        create
            .headers
            .get("x-amz-checksum-algorithm")
            .map(String::as_str),
        Some("SHA256")
    );
    assert_eq!(
        create.headers.get("x-amz-meta-sha256").map(String::as_str),
        Some(sha_big.as_str())
    );
    // No request carries the secret key (only its signature).
    for s in &seen {
        assert!(!format!("{:?}", s.headers).contains("push-secret-DO-NOT-PRINT"));
    }
    let _ = std::fs::remove_dir_all(&home);
}

#[test]
fn an_interrupted_push_fails_without_claiming_the_file_and_the_next_push_resumes_it() {
    let moto = Moto::start();
    moto.create_bucket(BUCKET);
    let home = scratch("resume");
    let sha = random_file(&home.join("app.tar.gz"), 48 << 20, 9);
    let state = home.join("state");
    // 5 MiB parts, 2 at a time: the third part can only start after one of the first two
    // was answered, and the network goes away during it (12 MiB into the bodies).
    let proxy = Proxy::start(&moto.url, Some(12 << 20));
    let o = with_keys(&mut push_command(&home))
        .env("JOB_NAME", "app")
        .env("BUILD_NUMBER", "3")
        .env("NECTR_PUSH_STATE_DIR", &state)
        .args(["push", "--bucket", BUCKET, "--endpoint-url", &proxy.url])
        .args(["--part-size-mib", "5", "-j", "2", "--retries", "2"])
        .args(["--manifest", "pushed.json", "app.tar.gz"])
        .output()
        .unwrap();
    assert!(proxy.was_cut());
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("FAILED app.tar.gz") && err.contains("next push of this file resumes it"),
        "{err}"
    );
    let m = read_json(&home.join("pushed.json"));
    assert_eq!(m["ok"], false);
    assert_eq!(m["objects"][0]["status"], "failed");
    assert!(m["objects"][0].get("url").is_none(), "{m}");
    assert!(
        moto.keys(BUCKET).is_empty(),
        "nothing visible in the bucket"
    );
    assert_eq!(moto.uploads(BUCKET), 1, "the upload stays open");
    assert_eq!(
        std::fs::read_dir(&state).unwrap().count(),
        1,
        "the journal remembers it"
    );

    // The network is back: the same push resumes.
    let o = with_keys(&mut push_command(&home))
        .env("JOB_NAME", "app")
        .env("BUILD_NUMBER", "3")
        .env("NECTR_PUSH_STATE_DIR", &state)
        .args(["push", "--bucket", BUCKET, "--endpoint-url", &moto.url])
        .args(["--part-size-mib", "5", "-j", "2"])
        .args(["--manifest", "pushed.json", "app.tar.gz"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("resuming the interrupted upload"), "{err}");
    let m = read_json(&home.join("pushed.json"));
    let obj = &m["objects"][0];
    assert_eq!(obj["status"], "pushed");
    assert_eq!(obj["parts"], 10);
    let resumed = obj["resumed_parts"].as_u64().unwrap();
    assert!((1..10).contains(&resumed), "resumed {resumed} of 10: {m}");
    let (status, body) = moto.get(BUCKET, "app/3/app.tar.gz");
    assert_eq!(status, 200);
    assert_eq!(sha256_hex(&body), sha, "the resumed object is the file");
    assert_eq!(moto.uploads(BUCKET), 0);
    assert_eq!(
        std::fs::read_dir(&state).unwrap().count(),
        0,
        "journal cleared"
    );
    let _ = std::fs::remove_dir_all(&home);
}

#[test]
fn a_changed_file_is_not_resumed_into_the_old_upload() {
    let moto = Moto::start();
    moto.create_bucket(BUCKET);
    let home = scratch("resume-changed");
    random_file(&home.join("a.bin"), 24 << 20, 1);
    let state = home.join("state");
    let proxy = Proxy::start(&moto.url, Some(8 << 20));
    let o = with_keys(&mut push_command(&home))
        .env("NECTR_PUSH_STATE_DIR", &state)
        .args(["push", "--bucket", BUCKET, "--endpoint-url", &proxy.url])
        .args([
            "--key",
            "k/{name}",
            "--part-size-mib",
            "5",
            "-j",
            "1",
            "--retries",
            "1",
        ])
        .arg("a.bin")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert_eq!(moto.uploads(BUCKET), 1);
    // The file is rebuilt with other content before the next push.
    let sha = random_file(&home.join("a.bin"), 24 << 20, 2);
    let o = with_keys(&mut push_command(&home))
        .env("NECTR_PUSH_STATE_DIR", &state)
        .args(["push", "--bucket", BUCKET, "--endpoint-url", &moto.url])
        .args([
            "--key",
            "k/{name}",
            "--part-size-mib",
            "5",
            "--manifest",
            "-",
        ])
        .arg("a.bin")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let m: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(m["objects"][0]["resumed_parts"], 0, "{m}");
    assert_eq!(moto.uploads(BUCKET), 0, "the stale upload was aborted");
    let (_, body) = moto.get(BUCKET, "k/a.bin");
    assert_eq!(sha256_hex(&body), sha);
    let _ = std::fs::remove_dir_all(&home);
}

#[test]
fn a_missing_bucket_fails_clearly_and_pushes_nothing() {
    let moto = Moto::start();
    let home = scratch("no-bucket");
    std::fs::write(home.join("a.txt"), b"a").unwrap();
    let o = with_keys(&mut push_command(&home))
        .env("AWS_ENDPOINT_URL", &moto.url)
        .args(["push", "--bucket", "nectr_missing", "--key", "x/{path}"])
        .args(["--manifest", "m.json", "a.txt"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("the bucket nectr_missing does not exist"),
        "{err}"
    );
    let m = read_json(&home.join("m.json"));
    assert_eq!(m["ok"], false);
    assert!(m["error"].as_str().unwrap().contains("does not exist"));
    for obj in manifest_objects(&m) {
        assert_eq!(obj["status"], "failed");
    }
    // fetch says the same.
    let o = with_keys(&mut push_command(&home))
        .env("AWS_ENDPOINT_URL", &moto.url)
        .args(["fetch", "--bucket", "nectr_missing", "x/a.txt"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("does not exist"));
    let _ = std::fs::remove_dir_all(&home);
}

#[test]
fn credentials_come_from_the_instance_role_and_their_absence_is_a_clear_error() {
    let moto = Moto::start();
    moto.create_bucket(BUCKET);
    let home = scratch("creds");
    std::fs::write(home.join("a.txt"), b"a").unwrap();

    // No keys in the environment or files, and an instance with no role.
    let imds = FakeImds::start(None);
    let o = push_command(&home)
        .env("AWS_EC2_METADATA_DISABLED", "false")
        .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", &imds.url)
        .env("AWS_REGION", "us-east-1")
        .args(["push", "--bucket", BUCKET, "--endpoint-url", &moto.url])
        .args(["--key", "x/{name}", "--manifest", "m.json", "a.txt"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("no AWS credentials"), "{err}");
    assert!(
        imds.requests
            .lock()
            .unwrap()
            .iter()
            .any(|r| r == "PUT /latest/api/token"),
        "the chain asked IMDS (v2)"
    );
    assert_eq!(read_json(&home.join("m.json"))["ok"], false);
    assert!(moto.keys(BUCKET).is_empty());

    // The instance role: keys from IMDSv2.
    let imds = FakeImds::start(Some("nectr-build-machine"));
    let o = push_command(&home)
        .env("AWS_EC2_METADATA_DISABLED", "false")
        .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", &imds.url)
        .env("AWS_REGION", "us-east-1")
        .args(["push", "--bucket", BUCKET, "--endpoint-url", &moto.url])
        .args(["--key", "x/{name}", "--manifest", "m.json", "a.txt"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(imds
        .requests
        .lock()
        .unwrap()
        .iter()
        .any(|r| r == "GET /latest/meta-data/iam/security-credentials/nectr-build-machine"));
    assert_eq!(moto.keys(BUCKET), vec!["x/a.txt".to_string()]);
    let all = format!(
        "{}{}",
        text(&o),
        std::fs::read_to_string(home.join("m.json")).unwrap()
    );
    assert!(!all.contains(IMDS_SECRET) && !all.contains("imds-session-DO-NOT-PRINT"));
    let _ = std::fs::remove_dir_all(&home);
}

#[test]
fn usage_errors_exit_2_before_anything_is_sent() {
    let home = scratch("usage");
    std::fs::write(home.join("a.txt"), b"a").unwrap();
    let run = |args: &[&str], env: &[(&str, &str)]| {
        let mut c = push_command(&home);
        with_keys(&mut c);
        for (k, v) in env {
            c.env(k, v);
        }
        c.args(args).output().unwrap()
    };
    // A pattern that matches nothing (the shell left it as it was).
    let o = run(
        &[
            "push",
            "--bucket",
            BUCKET,
            "--key",
            "k/{name}",
            "dist/*.tar.gz",
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no file matches \"dist/*.tar.gz\""));
    // Outside a build, the default key has no JOB_NAME.
    let o = run(&["push", "--bucket", BUCKET, "a.txt"], &[]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("JOB_NAME is not set"));
    // No bucket anywhere.
    let o = run(
        &["push", "a.txt"],
        &[("JOB_NAME", "j"), ("BUILD_NUMBER", "1")],
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no bucket"));
    // The bucket from the environment, an empty glob allowed: exit 0 would need S3, so only
    // the option parsing is checked here.
    let o = run(&["push", "--part-size-mib", "1", "a.txt"], &[]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let o = run(&["--help"], &[]);
    assert_eq!(o.status.code(), Some(0));
    let o = run(&["push", "--help"], &[]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("{JOB_NAME}/{BUILD_NUMBER}/{path}") && out.contains("IMDSv2"),
        "{out}"
    );
    let _ = std::fs::remove_dir_all(&home);
}

/// On a terminal (a pty from util-linux's `script`), `--progress auto` draws indicatif bars
/// (name, phase, bytes) instead of the plain lines a build log gets.
#[test]
fn a_terminal_gets_a_bar_and_a_build_log_gets_lines() {
    let moto = Moto::start();
    moto.create_bucket("nectr-deploy");
    let home = scratch("tty");
    random_file(&home.join("big.bin"), 12 << 20, 3);
    let cmdline = format!(
        "{} push --bucket nectr-deploy --endpoint-url {} --key tty/{{name}} --part-size-mib 5 -j 1 big.bin",
        env!("CARGO_BIN_EXE_nectr-agent-push"),
        moto.url
    );
    let mut c = push_command(&home);
    with_keys(&mut c)
        .env("TERM", "xterm")
        .env("SHELL", "/bin/sh")
        .args(["-qec", &cmdline, "/dev/null"]);
    // Run `script` with the environment push_command set up for the push binary.
    let mut script = std::process::Command::new("script");
    script.env_clear();
    for (k, v) in c.get_envs() {
        if let Some(v) = v {
            script.env(k, v);
        }
    }
    let o = script
        .current_dir(&home)
        .args(c.get_args())
        .output()
        .expect("util-linux's script (a pty)");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let tty = String::from_utf8_lossy(&o.stdout);
    assert!(
        tty.contains("big.bin (checksum)") || tty.contains("big.bin (upload)"),
        "{tty}"
    );
    assert!(tty.contains("/12.00 MiB"), "a bar with bytes: {tty}");
    assert!(!tty.contains("% ("), "plain lines on a terminal: {tty}");
    assert!(
        tty.contains("pushed big.bin -> s3://nectr-deploy/tty/big.bin"),
        "{tty}"
    );
    let _ = std::fs::remove_dir_all(&home);
}
