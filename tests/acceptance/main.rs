//! Acceptance and protocol tests: the real plugin binary, the real
//! terraform binary, and live PostgreSQL nodes started for each test.

// Test code: a failed expectation is a panic with the reason.
#![allow(clippy::unwrap_used)]
mod bastion;
mod certificates;
mod channel_binding;
mod differential;
mod ephemeral;
mod examples;
mod generate_config;
mod harness;
mod hba_file;
mod hba_rule;
mod hostile_tenant;
mod ident;
mod membership;
mod password_auth;
mod protocol;
mod real_cluster;
mod release;
mod reliability;
mod rotation;
mod safe_writes;
mod secrets_in_state;
mod soak;
mod sshd;
mod unknowns;
mod untrusted;
