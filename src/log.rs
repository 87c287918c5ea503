//! Logging to stderr as hclog JSON lines, which Terraform's plugin client
//! parses and merges into its own log (`TF_LOG=debug` shows them).
//!
//! Values that are secrets are [`crate::secret::Secret`]s and print redacted.

use std::fmt::Display;
use std::io::Write;
use std::sync::OnceLock;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

impl Level {
    fn name(self) -> &'static str {
        match self {
            Level::Trace => "trace",
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        }
    }
}

fn threshold() -> Level {
    static LEVEL: OnceLock<Level> = OnceLock::new();
    *LEVEL.get_or_init(|| {
        let v = std::env::var("TF_LOG_PROVIDER")
            .or_else(|_| std::env::var("TF_LOG"))
            .unwrap_or_default();
        match v.to_ascii_lowercase().as_str() {
            "trace" | "json" => Level::Trace,
            "info" => Level::Info,
            "warn" => Level::Warn,
            "error" | "off" => Level::Error,
            _ => Level::Debug,
        }
    })
}

/// Writes one log line with `fields` as extra JSON keys.
pub fn log(level: Level, message: &str, fields: &[(&str, &dyn Display)]) {
    if level < threshold() {
        return;
    }
    let mut m = serde_json::Map::new();
    m.insert("@level".into(), level.name().into());
    m.insert("@message".into(), message.into());
    m.insert("@module".into(), "provider.timescaledb".into());
    m.insert(
        "@timestamp".into(),
        humantime::format_rfc3339_micros(std::time::SystemTime::now())
            .to_string()
            .into(),
    );
    for (k, v) in fields {
        m.insert((*k).to_string(), v.to_string().into());
    }
    let line = serde_json::Value::Object(m).to_string();
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{line}");
}

pub fn debug(message: &str, fields: &[(&str, &dyn Display)]) {
    log(Level::Debug, message, fields)
}
pub fn info(message: &str, fields: &[(&str, &dyn Display)]) {
    log(Level::Info, message, fields)
}
pub fn warn(message: &str, fields: &[(&str, &dyn Display)]) {
    log(Level::Warn, message, fields)
}
pub fn error(message: &str, fields: &[(&str, &dyn Display)]) {
    log(Level::Error, message, fields)
}
