//! Progress: an indicatif bar per file on a terminal, plain lines in a build log (one at
//! each tenth of a file, so a log shows steady progress without a line per request), or
//! nothing but the summary.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use indicatif::{HumanBytes, MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::cli::ProgressMode;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Style {
    Bar,
    Plain,
    None,
}

/// The progress display of one command.
#[derive(Clone)]
pub struct Progress {
    style: Style,
    multi: Option<MultiProgress>,
    /// `nectr-agent push` or `nectr-agent fetch`.
    prefix: &'static str,
}

impl Progress {
    pub fn new(mode: ProgressMode, prefix: &'static str) -> Progress {
        let style = match mode {
            ProgressMode::Bar => Style::Bar,
            ProgressMode::Plain => Style::Plain,
            ProgressMode::None => Style::None,
            ProgressMode::Auto if std::io::stderr().is_terminal() => Style::Bar,
            ProgressMode::Auto => Style::Plain,
        };
        let multi = (style == Style::Bar)
            .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        Progress {
            style,
            multi,
            prefix,
        }
    }

    /// A line on standard error that does not tear a bar.
    pub fn line(&self, text: &str) {
        match &self.multi {
            Some(m) => {
                if m.println(format!("{}: {text}", self.prefix)).is_err() {
                    eprintln!("{}: {text}", self.prefix);
                }
            }
            None => eprintln!("{}: {text}", self.prefix),
        }
    }

    /// A summary line, shown in every mode.
    pub fn summary(&self, text: &str) {
        self.line(text);
    }

    /// Progress of one file of `size` bytes.
    pub fn file(&self, name: &str, size: u64) -> FileProgress {
        let bar = self.multi.as_ref().map(|m| {
            let b = m.add(ProgressBar::new(size));
            b.set_style(
                ProgressStyle::with_template(
                    "{msg:30!} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            b.set_message(name.to_string());
            b
        });
        FileProgress(Arc::new(Inner {
            name: name.to_string(),
            size,
            done: AtomicU64::new(0),
            tenths: AtomicU64::new(0),
            bar,
            plain: self.style == Style::Plain,
            progress: self.clone(),
        }))
    }
}

struct Inner {
    name: String,
    size: u64,
    done: AtomicU64,
    tenths: AtomicU64,
    bar: Option<ProgressBar>,
    plain: bool,
    progress: Progress,
}

/// Progress of one file; cheap to clone into the tasks sending its parts.
#[derive(Clone)]
pub struct FileProgress(Arc<Inner>);

impl FileProgress {
    /// `n` more bytes are through.
    pub fn add(&self, n: u64) {
        let i = &self.0;
        let done = i.done.fetch_add(n, Ordering::SeqCst) + n;
        if let Some(b) = &i.bar {
            b.set_position(done);
        }
        // Tenths below 100 %: the line saying the file is done follows.
        if i.plain && done < i.size {
            let tenth = done * 10 / i.size;
            let before = i.tenths.fetch_max(tenth, Ordering::SeqCst);
            if tenth > before {
                i.progress.line(&format!(
                    "{}: {}% ({} of {})",
                    i.name,
                    tenth * 10,
                    HumanBytes(done),
                    HumanBytes(i.size)
                ));
            }
        }
    }

    /// `n` more bytes checksummed (shown on a bar only: plain lines count sent bytes).
    pub fn hashed(&self, n: u64) {
        if let Some(b) = &self.0.bar {
            b.inc(n);
        }
    }

    /// Bytes that were already there (the parts of a resumed upload).
    pub fn skip(&self, n: u64) {
        self.add(n);
    }

    /// The phase shown next to the name on a bar (`checksum`, `upload`).
    pub fn phase(&self, phase: &str) {
        if let Some(b) = &self.0.bar {
            b.set_message(format!("{} ({phase})", self.0.name));
        }
    }

    /// Done (or failed): the bar goes away; the caller prints the summary.
    pub fn finish(&self) {
        if let Some(b) = &self.0.bar {
            b.finish_and_clear();
        }
    }

    /// Back to zero (after the checksum pass, before the bytes are sent).
    pub fn reset(&self) {
        self.0.done.store(0, Ordering::SeqCst);
        self.0.tenths.store(0, Ordering::SeqCst);
        if let Some(b) = &self.0.bar {
            b.set_position(0);
            b.reset_eta();
        }
    }
}
