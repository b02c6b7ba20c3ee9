//! The agent's recent log records, kept in memory for the node's Log page
//! (`SlaveComputer$SlaveLogFetcher`), as the Java agent's ring buffer does.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::Mutex;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer};

/// One log record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogEntry {
    /// Milliseconds since the Unix epoch.
    pub millis: i64,
    /// The `tracing` level.
    pub level: Level,
    /// Where it was logged (module path), Java's logger name.
    pub target: String,
    /// The message with its fields (`k=v`).
    pub message: String,
}

/// A bounded ring of the most recent records.
#[derive(Debug)]
pub struct LogRing {
    capacity: usize,
    entries: Mutex<VecDeque<LogEntry>>,
}

impl LogRing {
    /// A ring keeping the last `capacity` records (Jenkins asks for 256).
    pub fn new(capacity: usize) -> Self {
        LogRing {
            capacity: capacity.max(1),
            entries: Mutex::new(VecDeque::new()),
        }
    }

    /// Adds a record, dropping the oldest when full.
    pub fn push(&self, e: LogEntry) {
        let mut q = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if q.len() == self.capacity {
            q.pop_front();
        }
        q.push_back(e);
    }

    /// The records, oldest first.
    pub fn snapshot(&self) -> Vec<LogEntry> {
        let q = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        q.iter().cloned().collect()
    }
}

struct MessageVisitor(String, String);

impl Visit for MessageVisitor {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.0, "{value:?}");
        } else {
            let _ = write!(self.1, " {}={value:?}", field.name());
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0.push_str(value);
        } else {
            let _ = write!(self.1, " {}={value}", field.name());
        }
    }
}

/// A `tracing` layer feeding a [`LogRing`].
pub struct RingLayer(pub std::sync::Arc<LogRing>);

impl<S: Subscriber> Layer<S> for RingLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut v = MessageVisitor(String::new(), String::new());
        event.record(&mut v);
        let millis = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        self.0.push(LogEntry {
            millis,
            level: *event.metadata().level(),
            target: event.metadata().target().to_string(),
            message: v.0 + &v.1,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_only_the_most_recent_records() {
        let r = LogRing::new(2);
        for i in 0..3 {
            r.push(LogEntry {
                millis: i,
                level: Level::INFO,
                target: "t".into(),
                message: i.to_string(),
            });
        }
        let s = r.snapshot();
        assert_eq!(s.iter().map(|e| e.millis).collect::<Vec<_>>(), vec![1, 2]);
    }
}
