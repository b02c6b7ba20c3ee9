//! `nectr-agent push` as a Jenkinsfile uses it, on the real Jenkins 2.460 of
//! ../shared/jenkins with a nectr-agent node labelled c5: a Pipeline with `sh`, `stash`,
//! `unstash`, `archiveArtifacts` and `sh 'nectr-agent push …'` into moto's `nectr_deploy`,
//! the keys made from the build's own JOB_NAME and BUILD_NUMBER; and the example
//! Jenkinsfiles of jenkins-config/ pass the real declarative validator.
//!
//! The push binary must sit beside the agent binary, as on a build machine: `cargo test
//! --workspace` (scripts/test) builds both; for this file alone, `cargo build -p nectr-push`
//! first.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use support::jenkins::*;
use support::machines::*;
use support::*;

const BUILD: Duration = Duration::from_secs(240);

fn push_binary() -> PathBuf {
    let push = Path::new(env!("CARGO_BIN_EXE_nectr-agent")).with_file_name("nectr-agent-push");
    assert!(
        push.is_file(),
        "{} is missing: `nectr-agent push` runs it from nectr-agent's directory; build it \
         with `cargo build -p nectr-push` (scripts/test's cargo test --workspace does)",
        push.display()
    );
    push
}

#[test]
fn a_pipeline_on_a_c5_node_pushes_its_artifacts_under_the_builds_keys() {
    push_binary();
    let moto = Moto::start();
    let (status, _) = moto.s3("PUT", "/nectr_deploy");
    assert_eq!(status, 200);
    let j = Jenkins::shared();
    let root = scratch("c5-push");
    let secret = j.create_node("c5-push", "c5 linux", 1, &root);
    let _agent = NodeAgent::start(j, "c5-push", &secret, &root, true, &[]);
    j.wait_online("c5-push", Duration::from_secs(60));
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_nectr-agent"))
        .parent()
        .unwrap();
    // The example's steps; the AWS settings a build machine gets from its role and
    // agent.env come from withEnv here.
    let script = format!(
        "node('c5') {{\n\
           withEnv(['PATH+NECTR={bin}', 'NECTR_PUSH_BUCKET=nectr_deploy',\n\
                    'AWS_ENDPOINT_URL={moto}', 'AWS_REGION=us-east-1',\n\
                    'AWS_ACCESS_KEY_ID=AKIAPIPELINE', 'AWS_SECRET_ACCESS_KEY=pipeline-DO-NOT-PRINT',\n\
                    'AWS_EC2_METADATA_DISABLED=true', 'HOME={home}']) {{\n\
             stage('Build') {{\n\
               sh 'mkdir -p dist && head -c 7000000 /dev/urandom > dist/app-${{BUILD_NUMBER}}.tar.gz && echo notes > dist/notes.txt'\n\
               stash name: 'dist', includes: 'dist/**'\n\
             }}\n\
             stage('Publish') {{\n\
               deleteDir()\n\
               unstash 'dist'\n\
               sh 'nectr-agent push --part-size-mib 5 --manifest pushed.json dist/*.tar.gz'\n\
               archiveArtifacts artifacts: 'dist/*.tar.gz, pushed.json'\n\
             }}\n\
           }}\n\
         }}\n",
        bin = bin_dir.display(),
        moto = moto.url,
        home = root.display(),
    );
    j.create_job("push-example", &Jenkins::pipeline_xml(&script));
    let n = j.build("push-example", BUILD);
    let result = j.wait_result("push-example", n, BUILD);
    let console = j.final_console("push-example", n);
    assert_eq!(result, "SUCCESS", "{console}");
    let key = format!("push-example/{n}/dist/app-{n}.tar.gz");
    assert!(
        console.contains(&format!(
            "pushed dist/app-{n}.tar.gz -> s3://nectr_deploy/{key} (6.68 MiB, 2 parts"
        )),
        "{console}"
    );
    // Plain progress lines in the build log (parts finish in any order: some tenth).
    assert!(
        console
            .lines()
            .any(|l| l.contains(&format!("dist/app-{n}.tar.gz: ")) && l.contains("% (")),
        "{console}"
    );
    assert!(!console.contains("pipeline-DO-NOT-PRINT"));
    // What S3 holds is what Jenkins archived.
    let (s, archived) = j.get_bytes(&format!(
        "job/push-example/{n}/artifact/dist/app-{n}.tar.gz"
    ));
    assert_eq!(s, 200);
    assert_eq!(archived.len(), 7_000_000);
    let (s, stored) = moto.s3("GET", &format!("/nectr_deploy/{key}"));
    assert_eq!(s, 200);
    assert!(
        stored == archived,
        "the pushed object differs from the archived artifact"
    );
    let (s, manifest) = j.get_bytes(&format!("job/push-example/{n}/artifact/pushed.json"));
    assert_eq!(s, 200);
    let m: serde_json::Value = serde_json::from_slice(&manifest).unwrap();
    assert_eq!(m["ok"], true);
    assert_eq!(m["objects"][0]["key"], key.as_str());
    assert_eq!(
        m["objects"][0]["url"],
        format!("{}/nectr_deploy/{key}", moto.url)
    );
}

#[test]
fn the_example_jenkinsfiles_pass_the_real_declarative_validator() {
    let j = Jenkins::shared();
    let path = repo_root().join("jenkins-config/examples/Jenkinsfile");
    let text = std::fs::read_to_string(&path).unwrap();
    for must in [
        "agent { label 'c5' }",
        "sh '",
        "stash ",
        "unstash ",
        "archiveArtifacts",
        "nectr-agent push",
    ] {
        assert!(text.contains(must), "the example lacks {must:?}");
    }
    let validate = |jenkinsfile: &str| {
        let body = format!("jenkinsfile={}", urlencode(jenkinsfile));
        let (s, out, _) = j.post(
            "pipeline-model-converter/validate",
            "application/x-www-form-urlencoded",
            body.as_bytes(),
        );
        assert_eq!(s, 200, "{out}");
        out
    };
    let said = validate(&text);
    assert!(said.contains("successfully validated"), "{said}");
    // The validator can fail.
    let said = validate(&text.replace("stages {", "stagez {"));
    assert!(!said.contains("successfully validated"), "{said}");
    // The scripted example is Groovy the CPS transformer accepts: checked by running its
    // parse only (no node with label c5 runs it here).
    let scripted =
        std::fs::read_to_string(repo_root().join("jenkins-config/examples/Jenkinsfile.scripted"))
            .unwrap();
    let out = j.script(&format!(
        "new GroovyShell().parse({})\nprintln('parsed')",
        groovy_string(&scripted)
    ));
    assert!(out.contains("parsed"), "{out}");
}

/// A Groovy single-quoted triple string literal of `s`.
fn groovy_string(s: &str) -> String {
    format!(
        "'''{}'''",
        s.replace('\\', "\\\\").replace("'''", "\\'\\'\\'")
    )
}
