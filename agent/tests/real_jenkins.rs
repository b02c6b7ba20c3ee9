//! nectr-agent against the real Jenkins 2.460 in `../shared/jenkins/` (one Jenkins for this
//! test binary): freestyle "Execute shell" jobs, aborts, scripted Pipelines with `sh` and the
//! file, stash and archive steps, over WebSocket and JNLP4-connect. What a Jenkins user sees
//! is what is checked: build results, console text, archived artifacts, processes left.

mod support;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use support::jenkins::{Jenkins, NodeAgent};

const BUILD: Duration = Duration::from_secs(180);

/// A node of its own for one test, with nectr-agent connected over one transport.
struct Node {
    name: String,
    label: String,
    root: PathBuf,
    agent: NodeAgent,
}

fn node(tag: &str, websocket: bool) -> Node {
    let j = Jenkins::shared();
    let name = format!("{tag}-{}", if websocket { "ws" } else { "jnlp4" });
    let root = support::scratch(&name);
    let secret = j.create_node(&name, &name, 2, &root);
    let agent = NodeAgent::start(j, &name, &secret, &root, websocket, &[]);
    j.wait_online(&name, Duration::from_secs(60));
    Node {
        label: name.clone(),
        name,
        root,
        agent,
    }
}

impl Node {
    fn workspace(&self, job: &str) -> PathBuf {
        self.root.join("workspace").join(job)
    }
}

fn run_freestyle(n: &Node, job: &str, script: &str, unstable: Option<i32>) -> (String, String) {
    let j = Jenkins::shared();
    j.create_job(job, &Jenkins::freestyle_xml(&n.label, script, unstable));
    j.run(job, BUILD)
}

fn freestyle_runs_a_shell_step(websocket: bool) {
    let n = node("fs", websocket);
    let job = format!("fs-basic-{}", n.name);
    let (result, console) = run_freestyle(
        &n,
        &job,
        "echo hello from nectr\necho \"job=$JOB_NAME build=$BUILD_NUMBER\"\npwd\n\
         echo content > out.txt\necho \"PATH+ is merged: $PATH\" | head -c 40; echo\n\
         echo \"secret-visible=${JENKINS_SECRET:-no}\"",
        None,
    );
    assert_eq!(
        result,
        "SUCCESS",
        "{console}\nagent log:\n{}",
        n.agent.log_text()
    );
    assert!(
        console.contains(&format!("[{job}] $ /bin/sh -xe /tmp/")),
        "{console}"
    );
    assert!(console.contains("hello from nectr"), "{console}");
    assert!(console.contains(&format!("job={job} build=1")), "{console}");
    // The agent got its secret through JENKINS_SECRET; builds never see it.
    assert!(console.contains("secret-visible=no"), "{console}");
    let ws = n.workspace(&job);
    assert!(console.contains(&ws.display().to_string()), "{console}");
    // The controller reads the workspace file back through the agent.
    let text = Jenkins::shared().script(&format!(
        "print(jenkins.model.Jenkins.get().getItemByFullName('{job}').getLastBuild().getWorkspace().child('out.txt').readToString())"
    ));
    assert_eq!(text.trim(), "content");
    // The script went to the agent's temporary directory and was deleted.
    assert!(!console.contains("No such file"), "{console}");
}

fn freestyle_results_follow_exit_codes(websocket: bool) {
    let n = node("fsx", websocket);
    let job = format!("fs-fail-{}", n.name);
    let (result, console) = run_freestyle(&n, &job, "echo failing; exit 3", None);
    assert_eq!(result, "FAILURE", "{console}");
    assert!(
        console.contains("Build step 'Execute shell' marked build as failure"),
        "{console}"
    );
    let job = format!("fs-unstable-{}", n.name);
    let (result, console) = run_freestyle(&n, &job, "exit 42", Some(42));
    assert_eq!(result, "UNSTABLE", "{console}");
}

/// Processes whose environment carries `var=value`.
fn processes_with(var: &str, value: &str) -> Vec<i32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if let Ok(env) = std::fs::read(format!("/proc/{pid}/environ")) {
            let needle = format!("{var}={value}");
            if env.split(|b| *b == 0).any(|kv| kv == needle.as_bytes()) {
                // Zombies are gone for our purposes.
                let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
                if !stat
                    .rsplit_once(')')
                    .is_some_and(|(_, r)| r.trim_start().starts_with('Z'))
                {
                    out.push(pid);
                }
            }
        }
    }
    out
}

fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A three-generation tree (one grandchild in its own session, one re-parented to init);
/// aborting the build must end every process carrying the build's cookie.
fn abort_ends_the_whole_process_tree(websocket: bool) {
    let n = node("abort", websocket);
    let j = Jenkins::shared();
    let job = format!("fs-abort-{}", n.name);
    let marker = format!("nectr-abort-{}", n.name);
    let script = format!(
        "export MARK={marker}\n\
         sh -c 'sleep 300 & setsid sleep 301 & sleep 302' &\n\
         (sleep 303 &) \n\
         echo started\n\
         sleep 304\n"
    );
    j.create_job(&job, &Jenkins::freestyle_xml(&n.label, &script, None));
    let b = j.build(&job, BUILD);
    wait_until("the tree to start", Duration::from_secs(60), || {
        processes_with("MARK", &marker).len() >= 6
    });
    let (s, _, _) = j.post(&format!("job/{job}/{b}/stop"), "text/plain", b"");
    assert!(s == 302 || s == 200, "stop: {s}");
    let result = j.wait_result(&job, b, BUILD);
    assert_eq!(result, "ABORTED");
    wait_until(
        "every process of the build to end",
        Duration::from_secs(30),
        || processes_with("MARK", &marker).is_empty(),
    );
}

fn run_pipeline(job: &str, script: &str) -> (String, String, u32) {
    let j = Jenkins::shared();
    j.create_job(job, &Jenkins::pipeline_xml(script));
    let n = j.build(job, BUILD);
    let r = j.wait_result(job, n, BUILD);
    (r, j.final_console(job, n), n)
}

/// A scripted Pipeline with the everyday steps; the archived artifact is downloaded from the
/// controller and compared.
fn pipeline_runs_sh_and_file_steps(websocket: bool) {
    let n = node("pipe", websocket);
    let job = format!("pipe-{}", n.name);
    let script = format!(
        r#"node('{label}') {{
  sh 'echo "hello from sh on $NODE_NAME"; test -n "$JENKINS_NODE_COOKIE"'
  def st = sh(script: 'echo to status; exit 3', returnStatus: true)
  echo "status=${{st}}"
  def out = sh(script: 'printf "captured\\nline2"', returnStdout: true)
  echo "out=[${{out}}]"
  writeFile file: 'a/b.txt', text: 'written ünïcode'
  writeFile file: 'a/bin.dat', text: 'AAEC/w==', encoding: 'Base64'
  echo "read=${{readFile('a/b.txt')}}"
  echo "exists=${{fileExists('a/b.txt')}} missing=${{fileExists('nope')}}"
  dir('sub dir') {{ sh 'pwd; echo y > y.txt; ln -s y.txt link.txt' }}
  stash name: 's1', includes: 'a/**,sub dir/**'
  deleteDir()
  echo "after deleteDir exists=${{fileExists('a/b.txt')}}"
  unstash 's1'
  sh 'cat a/b.txt; echo; readlink "sub dir/link.txt"; od -An -tx1 a/bin.dat'
  archiveArtifacts artifacts: 'a/*.txt, sub dir/*.txt'
}}
"#,
        label = n.label
    );
    let (result, console, b) = run_pipeline(&job, &script);
    assert_eq!(
        result,
        "SUCCESS",
        "{console}\nagent log:\n{}",
        n.agent.log_text()
    );
    for want in [
        &format!("hello from sh on {}", n.name),
        "status=3",
        "out=[captured\nline2]",
        "read=written ünïcode",
        "exists=true missing=false",
        "after deleteDir exists=false",
        "Stashed 4 file(s)",
        "written ünïcode",
        "y.txt",
        " 00 01 02 ff",
        "Archiving artifacts",
    ] {
        assert!(console.contains(want), "missing {want:?} in:\n{console}");
    }
    assert!(
        console.contains(&format!("{}/sub dir", n.workspace(&job).display())),
        "{console}"
    );
    let j = Jenkins::shared();
    let (s, body) = j.get_bytes(&format!("job/{job}/{b}/artifact/a/b.txt"));
    assert_eq!(s, 200);
    assert_eq!(body, "written ünïcode".as_bytes());
    let (s, body) = j.get_bytes(&format!("job/{job}/{b}/artifact/sub%20dir/y.txt"));
    assert_eq!((s, body), (200, b"y\n".to_vec()));
}

/// The build log shows a step's output while the step still runs.
fn pipeline_log_is_live(websocket: bool) {
    let n = node("live", websocket);
    let j = Jenkins::shared();
    let job = format!("live-{}", n.name);
    let flag = n.root.join("release");
    let script = format!(
        "node('{}') {{ sh 'echo first-line; while [ ! -e \"{}\" ]; do sleep 0.2; done; echo second-line' }}",
        n.label,
        flag.display()
    );
    j.create_job(&job, &Jenkins::pipeline_xml(&script));
    let b = j.build(&job, BUILD);
    // The step cannot end before the flag exists: seeing its first line now proves the log
    // is live.
    wait_until("the first line in the live log", BUILD, || {
        j.console(&job, b).contains("first-line")
    });
    assert!(!j.console(&job, b).contains("second-line"));
    std::fs::write(&flag, "go").unwrap();
    assert_eq!(j.wait_result(&job, b, BUILD), "SUCCESS");
    assert!(j.final_console(&job, b).contains("second-line"));
}

/// Aborting a Pipeline `sh` ends its whole tree, including a process in its own session.
fn pipeline_abort_ends_the_step(websocket: bool) {
    let n = node("pabort", websocket);
    let j = Jenkins::shared();
    let job = format!("pabort-{}", n.name);
    let marker = format!("nectr-pabort-{}", n.name);
    let script = format!(
        "node('{}') {{ withEnv(['MARK={marker}']) {{ sh 'sh -c \"sleep 310 & setsid sleep 311 & sleep 312\" & echo started; sleep 313' }} }}",
        n.label
    );
    j.create_job(&job, &Jenkins::pipeline_xml(&script));
    let b = j.build(&job, BUILD);
    wait_until("the step's processes", Duration::from_secs(60), || {
        processes_with("MARK", &marker).len() >= 4
    });
    let (s, _, _) = j.post(&format!("job/{job}/{b}/stop"), "text/plain", b"");
    assert!(s == 302 || s == 200, "stop: {s}");
    assert_eq!(j.wait_result(&job, b, BUILD), "ABORTED");
    wait_until(
        "every process of the step to end",
        Duration::from_secs(30),
        || processes_with("MARK", &marker).is_empty(),
    );
}

/// A step longer than several heartbeat checks (the shared Jenkins checks every 4 s): the
/// controller reads the log's modification time through the agent; a wrong answer ends the
/// step with "process apparently never started" or "wrapper script does not seem to be
/// touching the log file".
fn pipeline_step_outlives_the_heartbeat(websocket: bool) {
    let n = node("beat", websocket);
    let job = format!("beat-{}", n.name);
    let script = format!(
        "node('{}') {{ sh 'for i in 1 2 3 4 5 6 7; do echo tick $i; sleep 2; done' }}",
        n.label
    );
    let (result, console, _) = run_pipeline(&job, &script);
    assert_eq!(result, "SUCCESS", "{console}");
    assert!(console.contains("tick 7"), "{console}");
    assert!(!console.contains("touching the log file"), "{console}");
}

/// A `sh` step running while the controller restarts: the wrapper keeps running, the agent
/// reconnects, the resumed Pipeline collects the rest of the log and the exit code. Its own
/// Jenkins, as it restarts it.
fn a_step_survives_a_controller_restart(websocket: bool) {
    let mut j = Jenkins::start();
    let name = format!("restart-{}", if websocket { "ws" } else { "jnlp4" });
    let root = support::scratch(&name);
    let secret = j.create_node(&name, &name, 1, &root);
    let agent = NodeAgent::start(&j, &name, &secret, &root, websocket, &[]);
    j.wait_online(&name, Duration::from_secs(60));
    let flag = root.join("release");
    let job = "survivor";
    let script = format!(
        "node('{name}') {{\n def st = sh(returnStatus: true, script: 'echo before-restart; while [ ! -e \"{}\" ]; do sleep 0.2; done; echo after-restart; exit 7')\n echo \"status=${{st}}\"\n}}",
        flag.display()
    );
    j.create_job(job, &Jenkins::pipeline_xml(&script));
    let b = j.build(job, BUILD);
    wait_until("the step to start", BUILD, || {
        j.console(job, b).contains("before-restart")
    });
    j.restart();
    j.wait_online(&name, Duration::from_secs(120));
    std::fs::write(&flag, "go").unwrap();
    let result = j.wait_result(job, b, BUILD);
    let console = j.final_console(job, b);
    assert_eq!(
        result,
        "SUCCESS",
        "{console}\nagent log:\n{}",
        agent.log_text()
    );
    assert!(console.contains("after-restart"), "{console}");
    assert!(console.contains("status=7"), "{console}");
    assert!(console.contains("Resuming build"), "{console}");
}

/// What a Jenkins admin opens: the workspace browser (listing, a file, a pattern, the zip of
/// everything) and the node's pages (system information, thread dump, log, script console).
fn workspace_and_node_pages(websocket: bool) {
    let n = node("pages", websocket);
    let j = Jenkins::shared();
    let job = format!("pages-{}", n.name);
    let (result, console) = run_freestyle(
        &n,
        &job,
        "mkdir -p deep/er && echo nested > deep/er/n.txt && echo top > 'top file.txt'",
        None,
    );
    assert_eq!(result, "SUCCESS", "{console}");
    let (s, page) = j.get(&format!("job/{job}/ws/"));
    assert_eq!(s, 200, "{page}");
    assert!(
        page.contains("href=\"top%20file.txt\""),
        "listing lacks the file"
    );
    assert!(
        page.contains("href=\"deep/er\""),
        "listing lacks the collapsed directory"
    );
    let (s, body) = j.get(&format!("job/{job}/ws/top%20file.txt"));
    assert_eq!((s, body.as_str()), (200, "top\n"));
    let (s, page) = j.get(&format!("job/{job}/ws/**/*.txt"));
    assert_eq!(s, 200);
    assert!(
        page.contains("deep/er/n.txt"),
        "pattern view lacks the file"
    );
    let (s, zip) = j.get_bytes(&format!("job/{job}/ws/*zip*/{job}.zip"));
    assert_eq!(s, 200);
    let listing = support::unzip_names(&zip);
    assert!(
        listing.contains(&format!("{job}/deep/er/n.txt"))
            && listing.contains(&format!("{job}/top file.txt")),
        "{listing:?}"
    );
    let (s, page) = j.get(&format!("computer/{}/systemInfo", n.name));
    assert_eq!(s, 200);
    assert!(
        page.contains("os.name") && page.contains("Linux"),
        "system properties"
    );
    assert!(page.contains("PATH"), "environment variables");
    let (s, page) = j.get(&format!("computer/{}/threadDump", n.name));
    assert_eq!(s, 200);
    assert!(
        page.contains("nectr"),
        "thread dump lists the agent's threads"
    );
    let (s, _) = j.get(&format!("computer/{}/log", n.name));
    assert_eq!(s, 200);
    let body = format!("script={}", support::jenkins::urlencode("println 'hi'"));
    let (s, out, _) = j.post(
        &format!("computer/{}/scriptText", n.name),
        "application/x-www-form-urlencoded",
        body.as_bytes(),
    );
    assert_eq!(s, 200, "{out}");
    // The JVM helper (on by default) runs the Groovy; with --jvm off the console explains
    // (jvm_helper.rs checks both).
    assert_eq!(out.trim(), "hi", "{out}");
}

/// Steps Jenkinsfiles use every day beyond the basics: credentials bound to variables and
/// files, a `#!/bin/bash` script, `timeout` aborting a step, `parallel` branches on one node,
/// and fingerprinted artifacts.
fn everyday_pipeline_steps(websocket: bool) {
    let n = node("daily", websocket);
    let j = Jenkins::shared();
    let suffix = if websocket { "ws" } else { "jnlp4" };
    let out = j.script(&format!(
        "import com.cloudbees.plugins.credentials.*\n\
         import com.cloudbees.plugins.credentials.domains.Domain\n\
         import org.jenkinsci.plugins.plaincredentials.impl.*\n\
         def store = SystemCredentialsProvider.getInstance().getStore()\n\
         store.addCredentials(Domain.global(), new StringCredentialsImpl(CredentialsScope.GLOBAL, 'tok-{suffix}', 'a token', hudson.util.Secret.fromString('s3cr3t-value')))\n\
         store.addCredentials(Domain.global(), new FileCredentialsImpl(CredentialsScope.GLOBAL, 'file-{suffix}', 'a file', 'key.txt', SecretBytes.fromBytes('file-secret'.bytes)))\n\
         print('ok')"
    ));
    assert_eq!(out.trim(), "ok", "{out}");
    let job = format!("daily-{}", n.name);
    let script = format!(
        r#"node('{label}') {{
  withCredentials([string(credentialsId: 'tok-{suffix}', variable: 'TOK'), file(credentialsId: 'file-{suffix}', variable: 'KEYFILE')]) {{
    sh 'test "$TOK" = s3cr3t-value && echo token-ok; echo "file=$(cat "$KEYFILE")"'
  }}
  sh '''#!/bin/bash
echo "running bash ${{BASH_VERSINFO[0]}}"'''
  try {{
    timeout(time: 3, unit: 'SECONDS') {{ sh 'sleep 120' }}
  }} catch (err) {{
    echo 'the timeout stopped the step'
  }}
  echo 'after-timeout'
  parallel a: {{ sh 'echo in-branch-a' }}, b: {{ sh 'echo in-branch-b' }}
  writeFile file: 'out/fp.bin', text: 'fingerprinted'
  archiveArtifacts artifacts: 'out/*.bin', fingerprint: true
}}
"#,
        label = n.label
    );
    let (result, console, _) = run_pipeline(&job, &script);
    assert_eq!(
        result,
        "SUCCESS",
        "{console}\nagent log:\n{}",
        n.agent.log_text()
    );
    for want in [
        "token-ok",
        "file=file-secret",
        "running bash ",
        "Cancelling nested steps due to timeout",
        "the timeout stopped the step",
        "after-timeout",
        "in-branch-a",
        "in-branch-b",
        "Recording fingerprints",
    ] {
        assert!(console.contains(want), "missing {want:?} in:\n{console}");
    }
    assert!(
        !console.contains("s3cr3t-value"),
        "the token leaked into the log"
    );
    // The fingerprint the agent computed is the file's MD5 (the system's md5sum agrees).
    let md5 = md5sum(b"fingerprinted");
    let (s, fp) = j.get(&format!("fingerprint/{md5}/api/json?tree=fileName"));
    assert_eq!(s, 200, "no fingerprint {md5}: {fp}");
    assert!(fp.contains("fp.bin"), "{fp}");
}

fn md5sum(data: &[u8]) -> String {
    use std::io::Write;
    let mut child = std::process::Command::new("md5sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("md5sum");
    child.stdin.take().unwrap().write_all(data).unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

macro_rules! both_transports {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[test]
            fn websocket() {
                super::$name(true);
            }
            #[test]
            fn jnlp4() {
                super::$name(false);
            }
        }
    )*};
}

both_transports!(
    freestyle_runs_a_shell_step,
    freestyle_results_follow_exit_codes,
    abort_ends_the_whole_process_tree,
    pipeline_runs_sh_and_file_steps,
    pipeline_log_is_live,
    pipeline_abort_ends_the_step,
    pipeline_step_outlives_the_heartbeat,
    a_step_survives_a_controller_restart,
    workspace_and_node_pages,
    everyday_pipeline_steps,
);
