//! One JSON line per decision. Nothing logged here ever holds a header value.

use std::io::Write;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};

/// Where decision lines go, and which are written.
pub struct Logger {
    level: u8,
    out: Mutex<Box<dyn Write + Send>>,
}

impl std::fmt::Debug for Logger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Logger")
            .field("level", &self.level)
            .finish()
    }
}

/// Kinds of line, to filter by level.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A forwarded request (level 2).
    Allow,
    /// A refused request (level 1).
    Deny,
    /// Something the operator should see (level 1).
    Warn,
    /// Startup information (level 1).
    Info,
}

impl Logger {
    /// A logger writing to `out` at `level`.
    pub fn new(level: u8, out: Box<dyn Write + Send>) -> Logger {
        Logger {
            level,
            out: Mutex::new(out),
        }
    }

    /// Whether a kind of line is written at this level.
    pub fn enabled(&self, kind: Kind) -> bool {
        match kind {
            Kind::Allow => self.level >= 2,
            Kind::Deny | Kind::Warn | Kind::Info => self.level >= 1,
        }
    }

    /// Writes one line: `event` plus `fields`, with a timestamp.
    pub fn write(&self, kind: Kind, fields: Value) {
        if !self.enabled(kind) {
            return;
        }
        let ts = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        let mut obj = Map::new();
        obj.insert("ts".into(), Value::from((ts * 1000.0).round() / 1000.0));
        obj.insert(
            "event".into(),
            Value::from(match kind {
                Kind::Allow => "allow",
                Kind::Deny => "deny",
                Kind::Warn => "warn",
                Kind::Info => "info",
            }),
        );
        if let Value::Object(m) = fields {
            obj.extend(m);
        }
        let mut line = Value::Object(obj).to_string();
        line.push('\n');
        let mut out = self.out.lock().unwrap_or_else(|p| p.into_inner());
        let _ = out.write_all(line.as_bytes());
        let _ = out.flush();
    }
}
