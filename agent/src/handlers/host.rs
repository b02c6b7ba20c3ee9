//! The host as handlers see it: the only place they touch the machine.

use std::io;
use std::path::Path;

/// Space on the filesystem holding a path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiskSpace {
    /// Bytes usable by an unprivileged user (statvfs `f_bavail * f_frsize`).
    pub usable: i64,
    /// Total bytes.
    pub total: i64,
    /// The path, made absolute and canonical.
    pub canonical_path: String,
}

/// Memory and swap in bytes, as `/proc/meminfo` reports them (-1 when unknown).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Memory {
    /// `MemFree` (what the Java library reports, not `MemAvailable`).
    pub available_physical: i64,
    /// `SwapFree`
    pub available_swap: i64,
    /// `MemTotal`
    pub total_physical: i64,
    /// `SwapTotal`
    pub total_swap: i64,
}

/// Host effects used by handlers.
pub trait Host: Send + Sync {
    /// Milliseconds since the Unix epoch.
    fn now_millis(&self) -> i64;
    /// `os.name (os.arch)` in Java's naming, e.g. `Linux (amd64)`.
    fn architecture(&self) -> String;
    /// Free and total space of the filesystem holding `path`.
    fn disk_space(&self, path: &str) -> io::Result<DiskSpace>;
    /// Memory figures.
    fn memory(&self) -> io::Result<Memory>;
    /// What Java's `java.io.tmpdir` would be.
    fn temp_dir(&self) -> String;
    /// `path` made absolute against the agent's working directory.
    fn absolute_path(&self, path: &str) -> String;
    /// The agent's recent log records, oldest first.
    fn recent_log(&self) -> Vec<crate::logring::LogEntry> {
        Vec::new()
    }
    /// The agent's own environment variables (what builds inherit before overrides).
    fn environment(&self) -> Vec<(String, String)> {
        std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .collect()
    }
}

/// The machine the agent runs on.
pub struct RealHost {
    /// The agent's working directory (`-workDir`).
    pub work_dir: std::path::PathBuf,
    /// The in-memory log ring, if logging feeds one.
    pub log: Option<std::sync::Arc<crate::logring::LogRing>>,
}

impl Host for RealHost {
    fn now_millis(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0)
    }

    fn architecture(&self) -> String {
        let os = match std::env::consts::OS {
            "linux" => "Linux",
            "macos" => "Mac OS X",
            "windows" => "Windows",
            other => other,
        };
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "x86" => "x86",
            other => other,
        };
        format!("{os} ({arch})")
    }

    fn disk_space(&self, path: &str) -> io::Result<DiskSpace> {
        let canonical = std::fs::canonicalize(path)?;
        let c = std::ffi::CString::new(canonical.as_os_str().as_encoded_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains NUL"))?;
        // SAFETY: `c` is a valid NUL-terminated path and `st` a properly sized out-buffer.
        let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
        if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
            return Err(io::Error::last_os_error());
        }
        let frsize = st.f_frsize as i64;
        Ok(DiskSpace {
            usable: (st.f_bavail as i64).saturating_mul(frsize),
            total: (st.f_blocks as i64).saturating_mul(frsize),
            canonical_path: canonical.to_string_lossy().into_owned(),
        })
    }

    fn memory(&self) -> io::Result<Memory> {
        parse_meminfo(&std::fs::read_to_string("/proc/meminfo")?)
    }

    fn temp_dir(&self) -> String {
        std::env::var("TMPDIR").unwrap_or_else(|_| "/tmp".into())
    }

    fn recent_log(&self) -> Vec<crate::logring::LogEntry> {
        self.log.as_ref().map(|l| l.snapshot()).unwrap_or_default()
    }

    fn absolute_path(&self, path: &str) -> String {
        let p = Path::new(path);
        if p.is_absolute() {
            path.into()
        } else {
            self.work_dir.join(p).to_string_lossy().into_owned()
        }
    }
}

/// Reads the four figures from `/proc/meminfo` text (kB values) in bytes.
pub fn parse_meminfo(text: &str) -> io::Result<Memory> {
    let get = |key: &str| -> i64 {
        text.lines()
            .find_map(|l| {
                let rest = l.strip_prefix(key)?.strip_prefix(':')?;
                let kb: i64 = rest.split_whitespace().next()?.parse().ok()?;
                Some(kb.saturating_mul(1024))
            })
            .unwrap_or(-1)
    };
    let m = Memory {
        available_physical: get("MemFree"),
        available_swap: get("SwapFree"),
        total_physical: get("MemTotal"),
        total_swap: get("SwapTotal"),
    };
    if m.total_physical <= 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "no MemTotal in /proc/meminfo",
        ));
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meminfo_is_read_in_bytes_with_memfree_as_available() {
        let m = parse_meminfo("MemTotal: 100 kB\nMemFree: 10 kB\nMemAvailable: 50 kB\nSwapTotal: 0 kB\nSwapFree: 0 kB\n").unwrap();
        assert_eq!(m.total_physical, 102_400);
        assert_eq!(m.available_physical, 10_240);
        assert_eq!(m.total_swap, 0);
    }

    #[test]
    fn the_real_host_reports_disk_and_architecture() {
        let h = RealHost {
            work_dir: "/".into(),
            log: None,
        };
        let d = h.disk_space("/").unwrap();
        assert!(d.total > 0 && d.usable <= d.total);
        assert!(h.architecture().contains('('));
    }
}
