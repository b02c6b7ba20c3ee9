//! Builds on nectr-agent against the controller simulator (`tests/java/src/nectr/sim`,
//! `Builds.java`), which plays freestyle and Pipeline builds with the callables, fields and
//! order of a real Jenkins 2.460 (captured in `/work/captures/sequence.txt`; the expected
//! sequences below are that file's, one build each). Every scenario runs over WebSocket and
//! JNLP4-connect. What is checked is what a Jenkins user would see: results, console text,
//! files stashed, unstashed and archived, processes left behind, and the channel staying up.

mod support;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value as J;
use support::scratch;
use support::sim::{processes_with, wait_until, Agent, Sim};

const BUILD: Duration = Duration::from_secs(120);

/// One simulator, one agent, one node root.
struct Run {
    sim: Sim,
    agent: Agent,
    /// The node's remote FS (also the agent's -workDir).
    node: PathBuf,
    /// Where the simulator keeps stashes and artifacts (the controller's disk).
    save: PathBuf,
}

impl Run {
    fn workspace(&self, job: &str) -> PathBuf {
        self.node.join("workspace").join(job)
    }

    /// Waits for the end of the build; returns its `build_done` event.
    fn build_done(&mut self) -> J {
        let done = self.sim.wait_for("build_done", BUILD);
        self.sim.wait_for("still_up", Duration::from_secs(60));
        done
    }

    /// The build's commands in sequence.txt's short names, polling rounds collapsed.
    fn sequence(&self) -> Vec<String> {
        collapse_polls(
            self.sim
                .seen_named("seq")
                .iter()
                .map(|e| e["short"].as_str().unwrap().to_string())
                .collect(),
        )
    }

    fn steps(&self, name: &str) -> Vec<J> {
        self.sim.seen_named(name).into_iter().cloned().collect()
    }

    fn agent_log(&self) -> String {
        self.agent.log_text()
    }
}

/// The files a test hands the simulator (program, script) live next to the node root.
fn start(transport: &[&str], scenario: &str, tag: &str, extra: &[&str]) -> Run {
    let base = scratch(tag);
    start_in(&base, &[], transport, scenario, extra)
}

fn start_in(
    base: &Path,
    prefix: &[&str],
    transport: &[&str],
    scenario: &str,
    extra: &[&str],
) -> Run {
    start_with_env(base, prefix, &[], transport, scenario, extra)
}

/// As `start_in`, with `env` added to the agent's own environment.
fn start_with_env(
    base: &Path,
    prefix: &[&str],
    env: &[(&str, &str)],
    transport: &[&str],
    scenario: &str,
    extra: &[&str],
) -> Run {
    let node = base.join("node");
    let save = base.join("save");
    std::fs::create_dir_all(&node).unwrap();
    std::fs::create_dir_all(save.join("stashes")).unwrap();
    let mut args = vec![
        "--remote-fs",
        node.to_str().unwrap(),
        "--save-dir",
        save.to_str().unwrap(),
        "--poll-max-ms",
        "1000",
    ];
    args.extend_from_slice(extra);
    let mut sim = Sim::start(scenario, &args);
    let work = base.join("agent-work");
    std::fs::create_dir_all(&work).unwrap();
    let agent = Agent::start_under(prefix, &work, &sim.url, transport, &[], env);
    sim.wait_for("online", Duration::from_secs(60));
    Run {
        sim,
        agent,
        node,
        save,
    }
}

/// Writes a Pipeline program (one step per line, fields separated by tabs) for `--program`.
fn program(tag: &str, lines: &[&str]) -> PathBuf {
    let p = scratch(&format!("{tag}-program")).join("program.txt");
    std::fs::write(&p, lines.join("\n")).unwrap();
    p
}

fn script_file(tag: &str, script: &str) -> PathBuf {
    let p = scratch(&format!("{tag}-script")).join("script.sh");
    std::fs::write(&p, script).unwrap();
    p
}

/// DurableTaskStep polls in rounds (IsDirectory, the charset question, WriteLog,
/// StatusCheck) until the exit code shows; how many rounds depends on timing, so repeated
/// rounds are collapsed into one.
fn collapse_polls(seq: Vec<String>) -> Vec<String> {
    const ROUND: [&str; 4] = [
        "IsDirectory",
        "TranscodingCharsetForSystemDefault",
        "WriteLog",
        "StatusCheck",
    ];
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < seq.len() {
        let is_round = seq.len() - i >= 4 && seq[i..i + 4].iter().zip(ROUND).all(|(a, b)| a == b);
        let prev_round =
            out.len() >= 4 && out[out.len() - 4..].iter().zip(ROUND).all(|(a, b)| a == b);
        if is_round && prev_round {
            i += 4;
            continue;
        }
        out.push(seq[i].clone());
        i += 1;
    }
    out
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// The commands of one `sh` step (sequence.txt #40–#55), ending with `tail` before the
/// cleanup; UnexportCommand of the process proxy is the simulator's (a JVM sends it when the
/// proxy is collected).
fn sh_sequence(tail: &[&str]) -> Vec<&'static str> {
    let mut v = vec![
        "GetAgentInfo",
        "Mkdirs",
        "Mkdirs",
        "Write",
        "RemoteLaunchCallable",
        "getIOtriplet",
        "IsDirectory",
        "TranscodingCharsetForSystemDefault",
        "WriteLog",
        "StatusCheck",
        "TranscodingCharsetForSystemDefault",
        "WriteLog",
    ];
    for t in tail {
        v.push(match *t {
            "GetOutput" => "GetOutput",
            other => panic!("unexpected {other}"),
        });
    }
    v.extend([
        "DeleteRecursive",
        "ProxyInputStream$EOF",
        "ProxyInputStream$EOF",
        "UnexportCommand",
    ]);
    v
}

fn assert_sequence(run: &Run, want: &[&str]) {
    let got = run.sequence();
    assert_eq!(
        got,
        strings(want),
        "the simulator's commands differ from the captured order\nagent log:\n{}",
        run.agent_log()
    );
}

// ------------------------------------------------------------------ freestyle

/// sequence.txt #17–#39 (fs1); the UnexportCommand of the process proxy is the simulator's.
const FREESTYLE: &[&str] = &[
    "Mkdirs",
    "CreateTextTempFile",
    "GetEnvVars",
    "Shellinterpreter",
    "RemoteLaunchCallable",
    "getIOtriplet",
    "join",
    "isAlive",
    "Delete",
    "KillTask",
    "UnexportCommand",
];

fn freestyle_runs_a_shell_step(transport: &[&str]) {
    let script = script_file(
        "fs",
        "echo hello from nectr\n\
         echo \"job=$JOB_NAME build=$BUILD_NUMBER tag=$BUILD_TAG\"\n\
         pwd\n\
         test -z \"${CLASSPATH+set}\" && echo 'CLASSPATH= removed it'\n\
         echo content > out.txt\n",
    );
    let mut run = start(
        transport,
        "freestyle",
        "fs",
        &["--script-file", script.to_str().unwrap()],
    );
    let done = run.build_done();
    let log = done["log"].as_str().unwrap();
    assert_eq!(done["result"], "SUCCESS", "{log}\n{}", run.agent_log());
    let ws = run.workspace("fs1");
    assert!(log.contains("[fs1] $ /bin/sh -xe /"), "{log}");
    assert!(log.contains("\nhello from nectr\n"), "{log}");
    assert!(log.contains("job=fs1 build=1 tag=jenkins-fs1-1"), "{log}");
    assert!(log.contains(&format!("\n{}\n", ws.display())), "{log}");
    assert!(log.contains("CLASSPATH= removed it"), "{log}");
    assert_eq!(
        std::fs::read_to_string(ws.join("out.txt")).unwrap(),
        "content\n"
    );
    // The script went to a temporary file that the controller deleted afterwards.
    let script_path = log
        .lines()
        .find_map(|l| l.strip_prefix("[fs1] $ /bin/sh -xe "))
        .unwrap();
    assert!(
        !Path::new(script_path).exists(),
        "{script_path} left behind"
    );
    assert_sequence(&run, FREESTYLE);
}

/// The launch environment is the agent's own overridden by the build's, with Jenkins' rules:
/// `PATH+X` prepends to PATH, an empty value removes the variable, `${X}` expands in
/// dependency order.
fn freestyle_environment_follows_jenkins_rules(transport: &[&str]) {
    let script = script_file(
        "fsenv",
        "echo \"path=$PATH\"\necho \"bin=$NECTR_BIN\"\necho \"gone=${NECTR_GONE-unset}\"\necho \"kept=$NECTR_KEPT\"\n",
    );
    let mut run = start_with_env(
        &scratch("fsenv"),
        &[],
        &[
            ("NECTR_GONE", "still here"),
            ("NECTR_KEPT", "from the agent"),
        ],
        transport,
        "freestyle",
        &[
            "--script-file",
            script.to_str().unwrap(),
            "--env",
            "PATH+NECTR=/opt/nectr-extra/bin",
            "--env",
            "NECTR_BIN=${NECTR_BASE}/bin",
            "--env",
            "NECTR_BASE=/opt/nectr-base",
            "--env",
            "NECTR_GONE=",
        ],
    );
    let done = run.build_done();
    let log = done["log"].as_str().unwrap();
    assert_eq!(done["result"], "SUCCESS", "{log}");
    let path = std::env::var("PATH").unwrap();
    assert!(
        log.contains(&format!("\npath=/opt/nectr-extra/bin:{path}\n")),
        "{log}"
    );
    assert!(log.contains("\nbin=/opt/nectr-base/bin\n"), "{log}");
    assert!(log.contains("\ngone=unset\n"), "{log}");
    assert!(log.contains("\nkept=from the agent\n"), "{log}");
}

fn freestyle_results_follow_exit_codes(transport: &[&str]) {
    let script = script_file("fsx", "echo failing; exit 3\n");
    let mut run = start(
        transport,
        "freestyle",
        "fsx",
        &["--script-file", script.to_str().unwrap()],
    );
    let done = run.build_done();
    assert_eq!(done["result"], "FAILURE", "{done}");
    let log = done["log"].as_str().unwrap();
    assert!(
        log.contains("Build step 'Execute shell' marked build as failure"),
        "{log}"
    );
    assert_eq!(run.steps("step_done")[0]["exit"], 3);
    drop(run);
    let script = script_file("fsu", "exit 42\n");
    let mut run = start(
        transport,
        "freestyle",
        "fsu",
        &[
            "--script-file",
            script.to_str().unwrap(),
            "--unstable-return",
            "42",
        ],
    );
    let done = run.build_done();
    assert_eq!(done["result"], "UNSTABLE", "{done}");
}

/// A three-generation tree (one grandchild in its own session, one re-parented to init),
/// complete before the abort (the script waits for the test's go file).
fn tree_script(marker: &str, go: &Path, base: u32) -> String {
    format!(
        "export MARK={marker}\n\
         sh -c 'sleep {a} & setsid sleep {b} & sleep {c}' &\n\
         (sleep {d} &)\n\
         while [ ! -e '{go}' ]; do sleep 0.1; done\n\
         echo started\n\
         sleep {e}\n",
        a = base,
        b = base + 1,
        c = base + 2,
        d = base + 3,
        e = base + 4,
        go = go.display()
    )
}

/// Waits until the four long sleeps of `tree_script` exist, then lets the script go on.
fn release_tree(marker: &str, go: &Path, base: u32) {
    wait_until("the build's process tree", Duration::from_secs(60), || {
        let long: Vec<_> = processes_with("MARK", marker)
            .into_iter()
            .filter(|p| {
                let c = support::sim::cmdline(*p);
                (base..base + 4).any(|n| c == format!("sleep {n}"))
            })
            .collect();
        long.len() == 4
    });
    std::fs::write(go, "go").unwrap();
}

fn marker(tag: &str, transport: &[&str]) -> String {
    format!(
        "nectr-sim-{tag}-{}-{}",
        std::process::id(),
        if transport.is_empty() { "jnlp4" } else { "ws" }
    )
}

/// Kills what is left of a test's process tree (by its MARK) when the test ends, failed or
/// not, so a failure does not leave sleeps behind.
struct TreeGuard(String);

impl Drop for TreeGuard {
    fn drop(&mut self) {
        let pids: Vec<String> = processes_with("MARK", &self.0)
            .iter()
            .map(|p| p.to_string())
            .collect();
        if !pids.is_empty() {
            let _ = Command::new("kill").arg("-9").args(&pids).status();
        }
    }
}

fn freestyle_abort_ends_the_whole_tree(transport: &[&str]) {
    let mark = marker("fsabort", transport);
    let _guard = TreeGuard(mark.clone());
    let go = scratch("fsabort-go").join("go");
    let script = script_file("fsabort", &tree_script(&mark, &go, 320));
    let mut run = start(
        transport,
        "freestyle",
        "fsabort",
        &[
            "--script-file",
            script.to_str().unwrap(),
            "--abort-on",
            "started",
        ],
    );
    let cookie = run.sim.wait_for("build_started", BUILD)["cookie"]
        .as_str()
        .unwrap()
        .to_string();
    release_tree(&mark, &go, 320);
    let done = run.build_done();
    assert_eq!(done["result"], "ABORTED", "{done}");
    // sequence.txt #201–#211 (fs2): Request$Cancel of the join, isAlive, Delete; then the
    // build's KillTask (with the EnvVars of the build, as #39).
    assert_sequence(
        &run,
        &[
            "Mkdirs",
            "CreateTextTempFile",
            "GetEnvVars",
            "Shellinterpreter",
            "RemoteLaunchCallable",
            "getIOtriplet",
            "join",
            "Request$Cancel",
            "isAlive",
            "Delete",
            "KillTask",
            "UnexportCommand",
        ],
    );
    wait_until(
        "every process of the build to end",
        Duration::from_secs(30),
        || {
            processes_with("MARK", &mark).is_empty()
                && processes_with("JENKINS_SERVER_COOKIE", &cookie).is_empty()
        },
    );
}

/// A Java agent kills the process tree when the controller cancels a pending
/// RemoteProcess.join (Proc.LocalProc.join catches the interrupt and calls destroy()), before
/// it answers: the controller's isAlive right after must be false.
fn a_cancelled_join_ends_the_process_before_answering(transport: &[&str]) {
    let mark = marker("fscancel", transport);
    let _guard = TreeGuard(mark.clone());
    let go = scratch("fscancel-go").join("go");
    // The script's shell takes 2 s to end after SIGTERM: an agent that answers the cancelled
    // join before the tree is gone is caught every time, not only when it loses a race.
    let script = format!(
        "trap 'sleep 2; exit 143' TERM\n{}",
        tree_script(&mark, &go, 330)
    );
    let script = script_file("fscancel", &script);
    let mut run = start(
        transport,
        "freestyle",
        "fscancel",
        &[
            "--script-file",
            script.to_str().unwrap(),
            "--abort-on",
            "started",
        ],
    );
    release_tree(&mark, &go, 330);
    let alive = run.sim.wait_for("is_alive", BUILD);
    run.build_done();
    assert_eq!(
        alive["value"], false,
        "after Request$Cancel of RemoteProcess.join the process must already be killed \
         (Java: Proc.LocalProc.join → destroy()): {alive}"
    );
}

// ------------------------------------------------------------------ Pipeline

/// The default program of the simulator is /work/captures/p1.groovy: sh, sh returnStatus,
/// sh returnStdout, writeFile, readFile, fileExists ×2, dir { sh }, stash, deleteDir, unstash,
/// sh, archiveArtifacts.
fn pipeline_runs_sh_and_file_steps(transport: &[&str]) {
    let mut run = start(transport, "pipeline", "p1", &[]);
    let done = run.build_done();
    let log = done["log"].as_str().unwrap();
    assert_eq!(done["result"], "SUCCESS", "{log}\n{}", run.agent_log());
    let steps = run.steps("step_done");
    let step = |i: usize| {
        steps
            .iter()
            .find(|s| s["index"] == i)
            .unwrap_or_else(|| panic!("no step {i}: {steps:#?}"))
    };
    assert!(
        step(0)["log"]
            .as_str()
            .unwrap()
            .contains("\nhello from sh\n"),
        "{}",
        step(0)
    );
    assert_eq!(step(1)["exit"], 3);
    assert_eq!(step(2)["stdout"], "captured\n");
    assert_eq!(step(2)["log"], "+ echo captured\n");
    assert_eq!(step(4)["text"], "written");
    assert_eq!(step(5)["value"], true);
    assert_eq!(step(6)["value"], false);
    let ws = run.workspace("p1");
    assert_eq!(
        step(7)["log"],
        format!("+ pwd\n{}/sub\n+ echo x\n", ws.display())
    );
    assert_eq!(step(8)["count"], 2);
    assert_eq!(
        step(11)["log"],
        "+ ls -R\n.:\na\nsub\n\n./a:\nb.txt\n\n./sub:\ny.txt\n"
    );
    // The stash on the controller is a real tar.gz of exactly those files.
    let x = scratch("p1-stash-x");
    let st = Command::new("tar")
        .arg("xzf")
        .arg(run.save.join("stashes/s1.tar.gz"))
        .arg("-C")
        .arg(&x)
        .status()
        .expect("run tar");
    assert!(st.success());
    assert_eq!(files(&x), files(&ws));
    // archiveArtifacts 'a/*.txt': extracted on the controller, byte for byte.
    assert_eq!(step(12)["entries"], "a/b.txt");
    assert_eq!(
        std::fs::read(run.save.join("artifacts/a/b.txt")).unwrap(),
        std::fs::read(ws.join("a/b.txt")).unwrap()
    );
    // The log is the WriteLog data, in order.
    let steps_log: String = [0, 1, 2, 7, 11]
        .iter()
        .map(|i| step(*i)["log"].as_str().unwrap().to_string())
        .collect();
    let agent_part: String = log
        .lines()
        .filter(|l| {
            !l.starts_with("[Pipeline]")
                && !l.starts_with("Running on ")
                && !l.starts_with("Stashed ")
                && !l.starts_with("Archiving")
                && !l.starts_with("Finished:")
        })
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(agent_part, steps_log);
    // sequence.txt #40–#136 (p1), after the GetEnvVars of a fresh node.
    let mut want = vec!["GetEnvVars"];
    want.extend(sh_sequence(&[]));
    want.extend(sh_sequence(&[]));
    want.extend(sh_sequence(&["GetOutput"]));
    want.extend(["Write", "Read", "Exists", "Exists"]);
    want.extend(sh_sequence(&[]));
    want.extend(["Archive", "DeleteRecursive", "UntarRemote"]);
    want.extend(sh_sequence(&[]));
    want.extend([
        "Mkdirs",
        "ListFiles",
        "CopyRecursiveRemoteToLocal",
        "KillTask",
    ]);
    assert_sequence(&run, &want);
}

fn pipeline_abort_ends_the_step_and_its_tree(transport: &[&str]) {
    let mark = marker("pabort", transport);
    let _guard = TreeGuard(mark.clone());
    let go = scratch("pabort-go").join("go");
    let script = tree_script(&mark, &go, 340).replace('\n', "\\n");
    let prog = program("pabort", &[&format!("sh\t{script}")]);
    let mut run = start(
        transport,
        "pipeline",
        "pabort",
        &["--program", prog.to_str().unwrap(), "--abort-on", "started"],
    );
    let launched = run.sim.wait_for("sh_launched", BUILD);
    let cookie = launched["cookie"].as_str().unwrap().to_string();
    let node_cookie = launched["node_cookie"].as_str().unwrap().to_string();
    release_tree(&mark, &go, 340);
    let done = run.build_done();
    assert_eq!(done["result"], "ABORTED", "{done}");
    // As captured (#189–#199): the step's KillTask with JENKINS_SERVER_COOKIE, then polling
    // until the wrapper records the exit code of the killed script (SIGTERM: 143).
    let exit = run.steps("step_exit");
    assert_eq!(exit[0]["code"], 143, "{exit:?}");
    let mut want = sh_sequence(&[]);
    let at = want.iter().position(|s| *s == "StatusCheck").unwrap() + 1;
    want.splice(
        at..at,
        [
            "IsDirectory",
            "KillTask",
            "IsDirectory",
            "TranscodingCharsetForSystemDefault",
            "WriteLog",
            "StatusCheck",
        ],
    );
    want.insert(0, "GetEnvVars");
    want.push("KillTask");
    assert_sequence(&run, &want);
    wait_until(
        "every process of the step to end",
        Duration::from_secs(30),
        || {
            processes_with("MARK", &mark).is_empty()
                && processes_with("JENKINS_SERVER_COOKIE", &cookie).is_empty()
                && processes_with("JENKINS_NODE_COOKIE", &node_cookie).is_empty()
        },
    );
}

/// The step's first line reaches the controller while the step still runs: the step cannot
/// end before the simulator, having seen that line, writes the release file.
fn pipeline_log_is_live(transport: &[&str]) {
    let base = scratch("plive");
    let release = base.join("node/workspace/p1/release");
    let prog = program(
        "plive",
        &[&format!(
            "sh\techo first-line; i=0; while [ ! -e '{}' ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done; echo second-line",
            release.display()
        )],
    );
    let mut run = start_in(
        &base,
        &[],
        transport,
        "pipeline",
        &[
            "--program",
            prog.to_str().unwrap(),
            "--release-on",
            "first-line",
            "--release-file",
            release.to_str().unwrap(),
        ],
    );
    let done = run.build_done();
    assert_eq!(done["result"], "SUCCESS", "{done}");
    assert_live(&run);
}

fn freestyle_log_is_live(transport: &[&str]) {
    let base = scratch("fslive");
    let release = base.join("node/workspace/fs1/release");
    let script = script_file(
        "fslive",
        &format!(
            "echo first-line\ni=0\nwhile [ ! -e '{}' ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done\necho second-line\n",
            release.display()
        ),
    );
    let mut run = start_in(
        &base,
        &[],
        transport,
        "freestyle",
        &[
            "--script-file",
            script.to_str().unwrap(),
            "--release-on",
            "first-line",
            "--release-file",
            release.to_str().unwrap(),
        ],
    );
    let done = run.build_done();
    assert_eq!(done["result"], "SUCCESS", "{done}");
    assert_live(&run);
}

/// "first-line" arrived alone, then the release, then the step's end.
fn assert_live(run: &Run) {
    let first = run
        .sim
        .position("log", |e| {
            e["text"].as_str().unwrap().contains("first-line")
        })
        .expect("first-line in the log");
    let first_event = &run.sim.seen[first];
    assert!(
        !first_event["text"]
            .as_str()
            .unwrap()
            .contains("second-line"),
        "the first line came only with the end of the step: {first_event}"
    );
    // The simulator decides to write the release file (trigger) only after "first-line"
    // reached it; "second-line" can only be printed after that write. (The write's answer,
    // `released`, may come after the second line: both travel on the channel.)
    let trigger = run
        .sim
        .position("trigger", |e| e["action"] == "release")
        .expect("the release trigger fired");
    assert!(
        run.sim.position("released", |e| e["ok"] == true).is_some(),
        "the release file was not written"
    );
    let second = run
        .sim
        .position("log", |e| {
            e["text"].as_str().unwrap().contains("\nsecond-line\n")
                || e["text"].as_str().unwrap().starts_with("second-line\n")
        })
        .expect("second-line in the log");
    let end = run
        .sim
        .position("step_exit", |_| true)
        .or_else(|| run.sim.position("step_done", |_| true))
        .unwrap();
    // The last line may come with the last-minute WriteLog after the exit code: only its
    // place after the release is fixed.
    assert!(
        first < trigger && trigger < second && first < end,
        "order: first-line {first}, release {trigger}, second-line {second}, end {end}"
    );
}

// ------------------------------------------------------------------ heartbeat

/// A step longer than the heartbeat window: LastModified of jenkins-log.txt moves on, so
/// the step is left alone (heartbeat shortened from 300 s to 3 s).
fn a_step_longer_than_the_heartbeat_stays_alive(transport: &[&str]) {
    let prog = program(
        "hb",
        &["sh\tfor i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16; do echo tick $i; sleep 0.5; done"],
    );
    let mut run = start(
        transport,
        "pipeline",
        "hb",
        &[
            "--program",
            prog.to_str().unwrap(),
            "--heartbeat-seconds",
            "3",
        ],
    );
    let done = run.build_done();
    assert_eq!(done["result"], "SUCCESS", "{done}");
    let beats = run.steps("heartbeat");
    assert!(beats.len() >= 2, "{beats:?}");
    let times: Vec<i64> = beats
        .iter()
        .map(|b| b["last_modified"].as_i64().unwrap())
        .collect();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    assert!(times.windows(2).all(|w| w[1] > w[0]), "{times:?}");
    assert!(
        times.iter().all(|t| (now - t).abs() < 120_000),
        "{times:?} vs {now}"
    );
    assert!(run.steps("pid_check").is_empty());
    assert!(run.sequence().contains(&"LastModified".to_string()));
}

/// When the log looks stale (a minimum delta larger than the step), the controller asks
/// whether <control>/pid exists: if so it keeps waiting, if not it records -1 with
/// FilePath$Write and ends the step as Jenkins does.
fn the_pid_check_decides_on_a_stale_log(transport: &[&str]) {
    let prog = program(
        "pid",
        &[
            "catchError\tsh\techo $$ > \"$(dirname \"$0\")/pid\"; sleep 4; echo done",
            "sh\tsleep 4",
        ],
    );
    let mut run = start(
        transport,
        "pipeline",
        "pid",
        &[
            "--program",
            prog.to_str().unwrap(),
            "--heartbeat-seconds",
            "1",
            "--heartbeat-min-delta-seconds",
            "3600",
        ],
    );
    let done = run.build_done();
    let log = done["log"].as_str().unwrap();
    assert_eq!(done["result"], "FAILURE", "{log}");
    let checks = run.steps("pid_check");
    assert!(checks.iter().any(|c| c["exists"] == true), "{checks:?}");
    assert!(checks.iter().any(|c| c["exists"] == false), "{checks:?}");
    let steps = run.steps("step_done");
    assert_eq!(steps[0]["exit"], 0, "{steps:?}");
    assert!(steps[0]["log"].as_str().unwrap().contains("\ndone\n"));
    assert_eq!(steps[1]["exit"], -1, "{steps:?}");
    assert!(
        log.contains("so heartbeat checks unreliable; process may or may not be alive"),
        "{log}"
    );
    assert!(
        log.contains("wrapper script does not seem to be touching the log file in "),
        "{log}"
    );
    let seq = run.sequence();
    assert!(
        seq.windows(2).any(|w| w == ["LastModified", "Exists"]),
        "{seq:?}"
    );
    assert!(
        seq.windows(3)
            .any(|w| w == ["LastModified", "Exists", "Write"]),
        "{seq:?}"
    );
}

// ------------------------------------------------------------------ controller restart

/// The controller dies in the middle of an `sh` step and comes back with the same identity,
/// ports and saved state: the agent reconnects, polling resumes at the saved offset, and the
/// rest of the log and the exit code are collected, each byte once.
fn a_controller_restart_in_the_middle_of_sh(transport: &[&str]) {
    let base = scratch("prestart");
    let node = base.join("node");
    let release = node.join("workspace/p1/release");
    let state = base.join("build-state.properties");
    let sim_state = base.join("sim-state");
    let prog = program(
        "prestart",
        &[&format!(
            "sh:status\techo before; i=0; while [ ! -e '{}' ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done; echo after; exit 7",
            release.display()
        )],
    );
    let common = [
        "--program".to_string(),
        prog.display().to_string(),
        "--build-state".to_string(),
        state.display().to_string(),
        "--state-dir".to_string(),
        sim_state.display().to_string(),
        "--heartbeat-seconds".to_string(),
        "5".to_string(),
    ];
    let mut first: Vec<&str> = common.iter().map(String::as_str).collect();
    first.extend(["--restart-on", "before"]);
    let mut run = start_in(&base, &[], transport, "pipeline", &first);
    let ready = run.sim.wait_for("restart_ready", BUILD);
    assert!(ready["offset"].as_u64().unwrap() > 0, "{ready}");
    let (http, jnlp) = (
        run.sim.http_port().to_string(),
        run.sim.jnlp_port().to_string(),
    );
    run.sim.kill();
    // The same controller again: identity (state dir), ports, build state.
    let save = base.join("save");
    let mut second: Vec<&str> = common.iter().map(String::as_str).collect();
    second.extend([
        "--remote-fs",
        node.to_str().unwrap(),
        "--save-dir",
        save.to_str().unwrap(),
        "--http-port",
        &http,
        "--jnlp-port",
        &jnlp,
        "--poll-max-ms",
        "1000",
        "--release-on",
        "before",
        "--release-file",
        release.to_str().unwrap(),
    ]);
    let mut sim = Sim::start("pipeline", &second);
    sim.wait_for("online", Duration::from_secs(60));
    let resumed = sim.wait_for("resumed", BUILD);
    assert_eq!(resumed["offset"], ready["offset"]);
    let done = sim.wait_for("build_done", BUILD);
    sim.wait_for("still_up", Duration::from_secs(60));
    assert_eq!(
        done["result"],
        "SUCCESS",
        "{done}\n{}",
        run.agent.log_text()
    );
    let step = sim
        .seen
        .iter()
        .find(|e| e["event"] == "step_done")
        .unwrap()
        .clone();
    assert_eq!(step["exit"], 7, "{step}");
    let log = step["log"].as_str().unwrap();
    assert_eq!(log.matches("\nbefore\n").count(), 1, "{log}");
    assert_eq!(log.matches("\nafter\n").count(), 1, "{log}");
    assert!(log.find("\nbefore\n") < log.find("\nafter\n"), "{log}");
    assert!(
        !state.exists(),
        "the build state is removed when the build ends"
    );
}

// ------------------------------------------------------------------ stash, unstash, archives

/// Every entry under `dir`: relative path → (kind, mode & 0777, content or link target).
fn tree(dir: &Path) -> BTreeMap<String, (char, u32, Vec<u8>)> {
    let mut out = BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
            let mode = m.permissions().mode() & 0o777;
            let entry = if m.file_type().is_symlink() {
                (
                    'l',
                    0,
                    std::fs::read_link(&p)
                        .unwrap()
                        .to_string_lossy()
                        .as_bytes()
                        .to_vec(),
                )
            } else if m.is_dir() {
                todo.push(p);
                ('d', 0, Vec::new())
            } else {
                ('f', mode, std::fs::read(&p).unwrap())
            };
            out.insert(rel, entry);
        }
    }
    out
}

/// The non-directory entries of `tree`.
fn files(dir: &Path) -> BTreeMap<String, (char, u32, Vec<u8>)> {
    tree(dir).into_iter().filter(|(_, e)| e.0 != 'd').collect()
}

/// 10,000 regular files (long, unicode and space-containing names, empty ones, executables),
/// symlinks, empty directories, and two files Ant's default excludes leave out.
fn big_tree(root: &Path) -> usize {
    let mut n = 0;
    let long = "l".repeat(120);
    for d in 0..100 {
        let dir = match d % 4 {
            0 => root.join(format!("dir {d:03}")),
            1 => root.join(format!("ünïcödé-日本-{d:03}")),
            2 => root.join(format!("{long}-{d:03}")).join("deeper/still"),
            _ => root.join(format!("d{d:03}")),
        };
        std::fs::create_dir_all(&dir).unwrap();
        for f in 0..100 {
            let name = match f % 5 {
                0 => format!("file {f}.txt"),
                1 => format!("fïlé-{f}.dat"),
                2 => format!("{}-{f}", "n".repeat(140)),
                _ => format!("f{f}"),
            };
            let p = dir.join(name);
            let content: Vec<u8> = if f % 17 == 0 {
                Vec::new()
            } else {
                (0..(d * 31 + f * 7) % 700)
                    .map(|i| (i * 13 + d + f) as u8)
                    .collect()
            };
            std::fs::write(&p, content).unwrap();
            if f % 9 == 0 {
                std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
            }
            n += 1;
        }
    }
    for i in 0..20 {
        std::os::unix::fs::symlink(
            format!("../d003/f{}", 3 + i % 2 * 5),
            root.join(format!("d007/link {i}")),
        )
        .unwrap();
    }
    std::fs::create_dir_all(root.join("empty/inner")).unwrap();
    std::fs::create_dir_all(root.join("also empty")).unwrap();
    std::fs::create_dir_all(root.join(".git")).unwrap();
    std::fs::write(root.join(".git/config"), "[core]\n").unwrap();
    std::fs::write(root.join("d003/editor-backup~"), "old\n").unwrap();
    n
}

/// Paths Ant's default excludes leave out of a `**` scan.
fn default_excluded(rel: &str) -> bool {
    rel.starts_with(".git") || rel.ends_with('~')
}

fn a_ten_thousand_file_stash_round_trip(transport: &[&str]) {
    let base = scratch("stash10k");
    let src = base.join("node/workspace/p1/src");
    let files_written = big_tree(&src);
    assert_eq!(files_written, 10_000);
    let prog = program(
        "stash10k",
        &[
            // As StashManager sends it: includes "**", default excludes on; files only.
            "dir\tsrc\tstash\tfiles\t**",
            "dir\tfiles\tunstash\tfiles",
            // Empty includes and no excludes: DirScanner$Glob falls back to DirScanner$Full,
            // which also carries empty directories (and ignores the default excludes). This
            // is the only Glob form that does; StashManager itself never sends it.
            "dir\tsrc\tstash\tfull\t",
            "dir\tfull\tunstash\tfull",
        ],
    );
    let mut run = start_in(
        &base,
        &[],
        transport,
        "pipeline",
        &["--program", prog.to_str().unwrap()],
    );
    let done = run.build_done();
    assert_eq!(done["result"], "SUCCESS", "{done}\n{}", run.agent_log());
    let ws = run.workspace("p1");
    let want: BTreeMap<_, _> = files(&src)
        .into_iter()
        .filter(|(k, _)| !default_excluded(k))
        .collect();
    let steps = run.steps("step_done");
    assert_eq!(steps[0]["count"], want.len(), "{}", steps[0]);
    assert_eq!(
        files(&ws.join("files")),
        want,
        "stash **: files and symlinks, byte for byte"
    );
    assert!(
        !ws.join("files/empty").exists(),
        "a ** stash carries files only"
    );
    assert_eq!(
        tree(&ws.join("full")),
        tree(&src),
        "stash of the whole tree, empty directories included"
    );
    // The stash file on the controller is an ordinary tar.gz.
    let x = base.join("x");
    std::fs::create_dir_all(&x).unwrap();
    let st = Command::new("tar")
        .arg("xzf")
        .arg(run.save.join("stashes/files.tar.gz"))
        .arg("-C")
        .arg(&x)
        .status()
        .expect("run tar");
    assert!(st.success());
    assert_eq!(files(&x), want);
}

/// A gzipped tar of `entries` (name, type flag, link target, data), written by hand: tar
/// tools refuse to make bad ones.
fn tgz(entries: &[(&str, u8, &str, &[u8])]) -> Vec<u8> {
    use std::io::Write;
    let mut t = Vec::new();
    for (name, kind, link, data) in entries {
        assert!(
            name.len() < 100 && link.len() < 100,
            "{name} / {link}: too long for a plain header"
        );
        t.extend(nectr_agent::tar::ustar_header(
            name.as_bytes(),
            *kind,
            data.len() as u64,
            link.as_bytes(),
        ));
        t.extend_from_slice(data);
        t.resize(t.len().div_ceil(512) * 512, 0);
    }
    t.resize(t.len() + 1024, 0);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&t).unwrap();
    gz.finish().unwrap()
}

fn a_hostile_stash_is_refused_naming_the_entry(transport: &[&str]) {
    let base = scratch("hostile");
    let outside = base.join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    let stashes = base.join("save/stashes");
    std::fs::create_dir_all(&stashes).unwrap();
    let abs = outside.join("abs.txt");
    let cases: [(&str, Vec<u8>, &str); 3] = [
        (
            "dotdot",
            tgz(&[
                ("ok.txt", b'0', "", b"fine"),
                ("../../escaped.txt", b'0', "", b"evil"),
            ]),
            "../../escaped.txt",
        ),
        (
            "absolute",
            tgz(&[(abs.to_str().unwrap(), b'0', "", b"evil")]),
            abs.to_str().unwrap(),
        ),
        (
            "symlink",
            tgz(&[
                ("link", b'2', outside.to_str().unwrap(), b""),
                ("link/through.txt", b'0', "", b"evil"),
            ]),
            "link",
        ),
    ];
    let mut lines = Vec::new();
    for (name, bytes, _) in &cases {
        std::fs::write(stashes.join(format!("{name}.tar.gz")), bytes).unwrap();
        lines.push(format!("catchError\tunstash\t{name}"));
    }
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    let prog = program("hostile", &lines);
    let mut run = start_in(
        &base,
        &[],
        transport,
        "pipeline",
        &["--program", prog.to_str().unwrap()],
    );
    let done = run.build_done();
    assert_eq!(done["result"], "FAILURE", "{done}");
    // Each case on its own, so that one accepted archive does not hide another.
    let failed = run.steps("step_failed");
    let mut problems = Vec::new();
    for (i, (name, _, entry)) in cases.iter().enumerate() {
        match failed.iter().find(|f| f["index"] == i) {
            None => problems.push(format!("{name}: the unstash was not refused")),
            Some(f) => {
                let err = f["error"].as_str().unwrap();
                if !err.contains(entry) {
                    problems.push(format!(
                        "{name}: the error does not name the entry {entry}: {err}"
                    ));
                }
            }
        }
    }
    let written: Vec<String> = std::fs::read_dir(&outside)
        .unwrap()
        .map(|e| e.unwrap().path().display().to_string())
        .collect();
    if !written.is_empty() {
        problems.push(format!("written outside the workspace: {written:?}"));
    }
    for p in [
        base.join("node/escaped.txt"),
        base.join("node/workspace/escaped.txt"),
    ] {
        if p.exists() {
            problems.push(format!("written outside the workspace: {}", p.display()));
        }
    }
    assert!(
        problems.is_empty(),
        "{problems:#?}\nstep errors: {failed:#?}"
    );
}

// ------------------------------------------------------------------ a full disk, no permission

fn tool(name: &str) {
    let ok = Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "{name} is required (util-linux; scripts/test installs it)"
    );
}

/// The agent in its own user and mount namespace, its node root a 256 KiB tmpfs: writeFile
/// and unstash of more than that fail with a readable IOException, and the channel stays up.
fn a_full_disk_gives_a_readable_ioexception(transport: &[&str]) {
    tool("unshare");
    let base = scratch("diskfull");
    let node = base.join("node");
    std::fs::create_dir_all(base.join("save/stashes")).unwrap();
    let noise: Vec<u8> = (0..1u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(
        base.join("save/stashes/big.tar.gz"),
        tgz(&[("big.bin", b'0', "", &noise)]),
    )
    .unwrap();
    let prog = program(
        "diskfull",
        &[
            "catchError\twriteFile:size\tbig.txt\t1048576",
            "catchError\tunstash\tbig",
            "fileExists\tbig.txt",
        ],
    );
    let mount = format!(
        "mount -t tmpfs -o size=256k nectr-full '{}' && exec \"$@\"",
        node.display()
    );
    std::fs::create_dir_all(&node).unwrap();
    let prefix = [
        "unshare",
        "--user",
        "--map-root-user",
        "--mount",
        "sh",
        "-c",
        &mount,
        "sh",
    ];
    let mut run = start_in(
        &base,
        &prefix,
        transport,
        "pipeline",
        &["--program", prog.to_str().unwrap()],
    );
    let done = run.build_done();
    assert_eq!(done["result"], "FAILURE", "{done}\n{}", run.agent_log());
    let failed = run.steps("step_failed");
    assert_eq!(failed.len(), 2, "{failed:#?}");
    for (f, name) in failed.iter().zip(["big.txt", "big.bin"]) {
        let err = f["error"].as_str().unwrap();
        assert!(
            err.contains("No space left on device"),
            "{err}\nall: {failed:#?}"
        );
        assert!(
            err.contains(name),
            "the error does not name {name}: {err}\nall: {failed:#?}"
        );
        assert!(
            err.contains("IOException") || err.contains("FileSystemException"),
            "{err}"
        );
    }
}

/// The agent without write permission on its node root (run as an unmapped user in a user
/// namespace, so even root is refused): readable AccessDenied errors, the channel stays up.
fn a_workspace_without_permission_gives_a_readable_ioexception(transport: &[&str]) {
    tool("unshare");
    let base = scratch("noperm");
    let node = base.join("node");
    std::fs::create_dir_all(&node).unwrap();
    std::fs::create_dir_all(base.join("save/stashes")).unwrap();
    std::fs::write(
        base.join("save/stashes/small.tar.gz"),
        tgz(&[("small.txt", b'0', "", b"small")]),
    )
    .unwrap();
    std::fs::set_permissions(&node, std::fs::Permissions::from_mode(0o555)).unwrap();
    let prog = program(
        "noperm",
        &[
            "catchError\twriteFile\ta.txt\thello",
            "catchError\tunstash\tsmall",
            "catchError\tsh\techo never",
        ],
    );
    let mut run = start_in(
        &base,
        &["unshare", "--user"],
        transport,
        "pipeline",
        &["--program", prog.to_str().unwrap()],
    );
    let done = run.build_done();
    std::fs::set_permissions(&node, std::fs::Permissions::from_mode(0o755)).unwrap();
    assert_eq!(done["result"], "FAILURE", "{done}");
    let failed = run.steps("step_failed");
    assert_eq!(failed.len(), 3, "{failed:#?}");
    let ws = run.workspace("p1");
    for f in &failed {
        let err = f["error"].as_str().unwrap();
        assert!(
            err.contains("AccessDeniedException") || err.contains("Permission denied"),
            "{err}"
        );
        assert!(
            err.contains(ws.to_str().unwrap()),
            "the error does not name the path: {err}\nall: {failed:#?}"
        );
    }
}

/// Runs a scenario test once per transport.
macro_rules! on_both_transports {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[test]
            fn websocket() {
                super::$name(&["-webSocket"]);
            }

            #[test]
            fn jnlp4() {
                super::$name(&[]);
            }
        }
    )*};
}

on_both_transports! {
    freestyle_runs_a_shell_step,
    freestyle_environment_follows_jenkins_rules,
    freestyle_results_follow_exit_codes,
    freestyle_abort_ends_the_whole_tree,
    a_cancelled_join_ends_the_process_before_answering,
    freestyle_log_is_live,
    pipeline_runs_sh_and_file_steps,
    pipeline_abort_ends_the_step_and_its_tree,
    pipeline_log_is_live,
    a_step_longer_than_the_heartbeat_stays_alive,
    the_pid_check_decides_on_a_stale_log,
    a_controller_restart_in_the_middle_of_sh,
    a_ten_thousand_file_stash_round_trip,
    a_hostile_stash_is_refused_naming_the_entry,
    a_full_disk_gives_a_readable_ioexception,
    a_workspace_without_permission_gives_a_readable_ioexception,
}

#[test]
fn polling_rounds_collapse_but_nothing_else() {
    let s = |v: &[&str]| strings(v);
    let round = [
        "IsDirectory",
        "TranscodingCharsetForSystemDefault",
        "WriteLog",
        "StatusCheck",
    ];
    let mut twice = s(&["getIOtriplet"]);
    twice.extend(s(&round));
    twice.extend(s(&round));
    twice.extend(s(&["TranscodingCharsetForSystemDefault", "WriteLog"]));
    let mut once = s(&["getIOtriplet"]);
    once.extend(s(&round));
    once.extend(s(&["TranscodingCharsetForSystemDefault", "WriteLog"]));
    assert_eq!(collapse_polls(twice), once);
    let other = s(&["Mkdirs", "Mkdirs", "Write"]);
    assert_eq!(collapse_polls(other.clone()), other);
}
