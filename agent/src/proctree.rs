//! Process trees on Linux, as Jenkins' `ProcessTree` sees them: every process with its parent
//! and (when readable) its environment, from `/proc`. Used to end a build's processes: the
//! tree under a launched process, plus every process whose environment carries the build's
//! cookie variables (so grandchildren that left the process group, started their own session
//! or were re-parented to init are found too).
//!
//! Ending is SIGTERM children first, a grace period for them to exit, then SIGKILL for the
//! ones still there. Jenkins itself stops after SIGTERM and the grace period (its
//! `SoftKillWaitSeconds`, 5 s); nectr finishes the job.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::time::{Duration, Instant};

/// Grace between SIGTERM and SIGKILL (Jenkins' `SoftKillWaitSeconds` default).
pub const GRACE: Duration = Duration::from_secs(5);

/// One process.
#[derive(Clone, Debug)]
pub struct Process {
    /// Its pid.
    pub pid: i32,
    /// Its parent's pid.
    pub ppid: i32,
}

/// A snapshot of the machine's processes.
pub struct Snapshot {
    procs: HashMap<i32, Process>,
}

fn ppid_of(pid: i32) -> Option<i32> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("PPid:"))
        .and_then(|v| v.trim().parse().ok())
}

/// True while `pid` exists and is not a zombie waiting to be reaped.
pub fn alive(pid: i32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            // The state follows the command name in parentheses (which may hold spaces).
            let state = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next());
            !matches!(state, Some("Z") | Some("X") | None)
        }
        Err(_) => false,
    }
}

/// The environment of `pid` (`/proc/PID/environ`); `None` when not readable.
pub fn environment(pid: i32) -> Option<HashMap<String, String>> {
    let raw = fs::read(format!("/proc/{pid}/environ")).ok()?;
    Some(
        raw.split(|b| *b == 0)
            .filter_map(|kv| {
                let s = String::from_utf8_lossy(kv);
                let (k, v) = s.split_once('=')?;
                Some((k.to_string(), v.to_string()))
            })
            .collect(),
    )
}

impl Snapshot {
    /// Reads `/proc` now. Processes that vanish while being read are skipped.
    pub fn take() -> Snapshot {
        let mut procs = HashMap::new();
        if let Ok(dir) = fs::read_dir("/proc") {
            for e in dir.flatten() {
                let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
                    continue;
                };
                if let Some(ppid) = ppid_of(pid) {
                    procs.insert(pid, Process { pid, ppid });
                }
            }
        }
        Snapshot { procs }
    }

    /// `root` and its descendants, children before parents.
    pub fn tree(&self, root: i32) -> Vec<i32> {
        let mut children: HashMap<i32, Vec<i32>> = HashMap::new();
        for p in self.procs.values() {
            children.entry(p.ppid).or_default().push(p.pid);
        }
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        fn walk(
            pid: i32,
            children: &HashMap<i32, Vec<i32>>,
            seen: &mut HashSet<i32>,
            out: &mut Vec<i32>,
        ) {
            if !seen.insert(pid) {
                return;
            }
            if let Some(kids) = children.get(&pid) {
                for k in kids {
                    walk(*k, children, seen, out);
                }
            }
            out.push(pid);
        }
        if self.procs.contains_key(&root) {
            walk(root, &children, &mut seen, &mut out);
        }
        out
    }

    /// Processes whose environment holds every `model` pair (an empty model matches nothing,
    /// as Jenkins' sanity check), each with its descendants, children first.
    pub fn matching(&self, model: &[(String, String)]) -> Vec<i32> {
        if model.is_empty() {
            return Vec::new();
        }
        let mut out = Vec::new();
        let mut pids: Vec<i32> = self.procs.keys().copied().collect();
        pids.sort_unstable();
        for pid in pids {
            let Some(env) = environment(pid) else {
                continue;
            };
            if model
                .iter()
                .all(|(k, v)| env.get(k).is_some_and(|x| x == v))
            {
                for p in self.tree(pid) {
                    if !out.contains(&p) {
                        out.push(p);
                    }
                }
            }
        }
        out
    }
}

/// The agent itself and its ancestors: never signalled, whatever a controller asks.
fn protected() -> HashSet<i32> {
    let mut set = HashSet::new();
    let mut pid = std::process::id() as i32;
    while pid > 1 && set.insert(pid) {
        match ppid_of(pid) {
            Some(p) => pid = p,
            None => break,
        }
    }
    set.insert(1);
    set
}

/// Ends `pids` (children listed before parents): SIGTERM to each, then SIGKILL to the ones
/// still alive after `grace`. Returns how many were signalled.
pub fn terminate(pids: &[i32], grace: Duration) -> usize {
    let keep = protected();
    let targets: Vec<i32> = pids
        .iter()
        .copied()
        .filter(|p| *p > 1 && !keep.contains(p))
        .collect();
    for pid in &targets {
        // SAFETY: kill(2) with a pid and a signal number has no memory effects.
        unsafe {
            libc::kill(*pid, libc::SIGTERM);
        }
    }
    let deadline = Instant::now() + grace;
    let mut sleep = Duration::from_millis(10);
    while targets.iter().any(|p| alive(*p)) && Instant::now() < deadline {
        std::thread::sleep(sleep);
        sleep = (sleep * 2).min(Duration::from_millis(250));
    }
    let survivors: Vec<i32> = targets.iter().copied().filter(|p| alive(*p)).collect();
    if !survivors.is_empty() {
        tracing::info!(
            "{} process(es) still running {} s after SIGTERM: sending SIGKILL to {survivors:?}",
            survivors.len(),
            grace.as_secs_f32()
        );
        for pid in &survivors {
            // SAFETY: as above.
            unsafe {
                libc::kill(*pid, libc::SIGKILL);
            }
        }
    }
    targets.len()
}

/// Ends the tree under `root` and every process carrying `model` in its environment.
pub fn kill_all(root: Option<i32>, model: &[(String, String)], grace: Duration) -> usize {
    let snap = Snapshot::take();
    let mut pids = Vec::new();
    if let Some(r) = root {
        pids.extend(snap.tree(r));
    }
    for p in snap.matching(model) {
        if !pids.contains(&p) {
            pids.push(p);
        }
    }
    // A child reached both ways is listed once; parents after their children either way.
    terminate(&pids, grace)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_agent_and_init_are_never_targets() {
        let me = std::process::id() as i32;
        assert_eq!(terminate(&[1, me], Duration::from_millis(1)), 0);
        assert!(alive(me));
    }

    #[test]
    fn finds_a_child_by_its_environment_and_ends_it() {
        let cookie = format!("test-{}", super::super::handlers::files::random_u64());
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .env("NECTR_TEST_COOKIE", &cookie)
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        let model = vec![("NECTR_TEST_COOKIE".to_string(), cookie)];
        // The environment is readable once exec has happened.
        let deadline = Instant::now() + Duration::from_secs(5);
        while !Snapshot::take().matching(&model).contains(&pid) {
            assert!(Instant::now() < deadline, "child never showed up in /proc");
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(kill_all(None, &model, GRACE), 1);
        let status = child.wait().unwrap();
        assert!(!status.success());
        assert!(Snapshot::take().matching(&[]).is_empty());
    }
}
