//! Acceptance and protocol tests: the real plugin binary, the real
//! terraform binary, and live PostgreSQL nodes started for each test.

mod harness;
mod hba_rule;
mod protocol;
