//! The provider block: schema and typed configuration, with libpq's
//! environment variables and password file as fallbacks.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::diag::{AttrPath, Diagnostics};
use crate::model::Model as _;
use crate::node::{
    Bastion, BastionSpec, ChannelBinding, ClientAuth, ConnSpec, HostKeys, SslMode,
    CHANNEL_BINDINGS, SSL_MODES,
};
use crate::passfile;
use crate::schema::Schema;
use crate::secret::Secret;
use crate::value::Value;

crate::model! {
    /// The provider block as configured.
    pub struct Settings {
        HOST => host: Option<String> = optional("Host name, IP address or Unix-socket directory of the access node. Falls back to `PGHOST`, then `localhost`."),
        PORT => port: Option<i64> = optional("Port of the access node. Falls back to `PGPORT`, then `5432`."),
        DATABASE => database: Option<String> = optional("Database to connect to on every node. Falls back to `PGDATABASE`, then `postgres`."),
        USERNAME => username: Option<String> = optional("Role the provider logs in as; it must be a superuser to manage files and roles. Falls back to `PGUSER`, then `postgres`."),
        PASSWORD => password: Option<Secret> = optional("Password of `username`. Falls back to `PGPASSWORD`, then the password file.").sensitive(),
        SSLMODE => sslmode: Option<String> = optional("TLS mode, as in libpq. Falls back to `PGSSLMODE`, then `prefer`.").one_of(SSL_MODES),
        CHANNEL_BINDING => channel_binding: Option<String> = optional(
                "Whether the provider's SCRAM logins are bound to the TLS connection (SCRAM-SHA-256-PLUS with \
                 `tls-server-end-point`), as in libpq: `prefer` binds whenever the server offers it over TLS, `require` refuses \
                 to log in otherwise (no TLS, a server without SCRAM-SHA-256-PLUS, or a method that is not SCRAM, such as \
                 `trust` or `cert`), `disable` never binds. Binding is what keeps a relay that terminates TLS with a certificate \
                 of its own from passing the provider's login on to the real server when `sslrootcert` does not pin the \
                 node's certificate. Falls back to `PGCHANNELBINDING`, then `prefer`.",
            )
            .one_of(CHANNEL_BINDINGS),
        SSLROOTCERT => sslrootcert: Option<String> = optional("CA certificate (PEM text or file path) that node certificates must chain to; needed for `verify-ca` and `verify-full`."),
        CONNECT_TIMEOUT => connect_timeout: Option<i64> = optional("Seconds to wait for a connection to a node. Falls back to `PGCONNECT_TIMEOUT`, then `15`."),
        DATA_NODES => data_nodes: Option<BTreeMap<String, BTreeMap<String, Option<String>>>> = optional(
                "Data nodes by name, each a map with any of `host`, `port`, `database`, `username`, `password`, `sslmode` and \
                 `channel_binding`; \
                 keys left out take the access node's value. A node behind a bastion of its own sets any of `bastion_host`, \
                 `bastion_port`, `bastion_user`, `bastion_private_key`, `bastion_agent` (`\"true\"`), \
                 `bastion_agent_identity`, `bastion_host_key` (one or more OpenSSH public key lines) and \
                 `bastion_known_hosts_file`, over the `bastion` block's values (an entry's host key or known_hosts file \
                 replaces both of the block's, its private key or agent every way of authenticating the block had); \
                 nodes with the same bastion settings share one SSH connection. When not set, the data nodes are discovered from \
                 `timescaledb_information.data_nodes` on the access node. Sensitive, since an entry may hold a password \
                 or a private key.",
            )
            .sensitive(),
        FANOUT => fanout: Option<String> = optional(
                "How role statements reach the data nodes: `distributed_exec` runs them with TimescaleDB's \
                 `CALL distributed_exec(...)` on the access node, `direct` connects to each data node, and `auto` uses \
                 `distributed_exec` when the access node has it (TimescaleDB multi-node, up to 2.13) and `direct` otherwise \
                 (plain PostgreSQL, TimescaleDB 2.14 and later). Reads always connect to every node directly. Defaults to `auto`.",
            )
            .one_of(FANOUTS),
        CLIENTCERT => clientcert: Option<ClientCert> = block("Client certificate the provider presents to the nodes."),
        BASTION => bastion: Option<BastionBlock> = block(
                "SSH bastion (jump host) that every connection to every node goes through, for nodes in a private network \
                 that only the bastion reaches. One SSH connection carries them all; the PostgreSQL protocol and its TLS run \
                 inside it unchanged, so `sslmode` and `verify-full` still check each node. Node addresses (`host`, \
                 `data_nodes`, and the discovered ones) are resolved and connected to by the bastion.",
            ),
    }
}

crate::model! {
    /// The `bastion` block.
    pub struct BastionBlock {
        SSH_HOST => host: String = required("Host name or address of the bastion's SSH server."),
        SSH_PORT => port: Option<i64> = optional("Port of the bastion's SSH server. Defaults to `22`."),
        USER => user: String = required("User the provider logs in to the bastion as (public key authentication)."),
        PRIVATE_KEY => private_key: Option<Secret> = optional(
                "Private key of `user` (OpenSSH, PKCS#8 or PuTTY format, unencrypted), as text or a file path. \
                 Never shown in a message. Exactly one of `private_key` and `agent` is required.",
            )
            .sensitive(),
        AGENT => agent: Option<bool> = optional(
                "Authenticate with the keys of the SSH agent whose socket `SSH_AUTH_SOCK` names where Terraform runs, \
                 as `ssh` does: the agent signs, the key never reaches the provider (an encrypted key, or one on a \
                 hardware token, stays where it is).",
            ),
        AGENT_IDENTITY => agent_identity: Option<String> = optional(
                "With `agent`: the one agent key to use, by its comment (as `ssh-add -l` lists it) or its OpenSSH public \
                 key line. Left out, the agent's keys are offered one after the other.",
            ),
        HOST_KEY => host_key: Option<Vec<String>> = optional(
                "The bastion's host keys, each an OpenSSH public key line (`ssh-ed25519 AAAA...`, as in its \
                 `/etc/ssh/ssh_host_*_key.pub`). The key the bastion presents must be one of them. Exactly one of \
                 `host_key` and `known_hosts_file` is required: a bastion is never trusted on first use.",
            ),
        KNOWN_HOSTS_FILE => known_hosts_file: Option<String> = optional(
                "A known_hosts file that records the bastion's keys under its `host` (and `[host]:port` for a port other \
                 than 22); hashed entries are understood.",
            ),
    }
}

crate::model! {
    /// The `clientcert` block.
    pub struct ClientCert {
        CERT => cert: String = required("Client certificate, PEM text or file path."),
        KEY => key: Secret = required("Private key of the client certificate, PEM text or file path.").sensitive(),
    }
}

/// How statements reach the data nodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fanout {
    /// `distributed_exec` when the access node has it, else direct.
    Auto,
    /// `CALL distributed_exec(...)` on the access node.
    DistributedExec,
    /// A connection to each data node.
    Direct,
}

pub const FANOUTS: &[&str] = &["auto", "distributed_exec", "direct"];

/// Keys a `data_nodes` entry may set.
pub const DATA_NODE_KEYS: &[&str] = &[
    "host",
    "port",
    "database",
    "username",
    "password",
    "sslmode",
    "channel_binding",
    "bastion_host",
    "bastion_port",
    "bastion_user",
    "bastion_private_key",
    "bastion_agent",
    "bastion_agent_identity",
    "bastion_host_key",
    "bastion_known_hosts_file",
];

/// What a `data_nodes` entry's bastion keys start with.
const BASTION_KEY_PREFIX: &str = "bastion_";

/// A `data_nodes` entry's bastion: the `bastion` block's settings with
/// the entry's `bastion_*` keys over them. The entry's host key (lines
/// of one string) or known_hosts file replaces both of the block's, and
/// its private key or agent every way of authenticating the block had.
fn entry_bastion(
    block: Option<&BastionParts>,
    get: &dyn Fn(&str) -> Option<String>,
) -> BastionParts {
    let mut b = block.cloned().unwrap_or_default();
    let key = |a: &str| get(&format!("{BASTION_KEY_PREFIX}{a}"));
    b.host = key(SSH_HOST).or(b.host);
    b.port = key(SSH_PORT).or(b.port);
    b.user = key(USER).or(b.user);
    let private_key = key(PRIVATE_KEY).map(Secret::new);
    let agent = key(AGENT);
    if private_key.is_some() || agent.is_some() {
        b.private_key = private_key;
        b.agent = agent;
        b.agent_identity = key(AGENT_IDENTITY);
    } else if let Some(i) = key(AGENT_IDENTITY) {
        b.agent_identity = Some(i);
    }
    let lines = key(HOST_KEY).map(|k| {
        k.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect::<Vec<_>>()
    });
    let file = key(KNOWN_HOSTS_FILE);
    if lines.is_some() || file.is_some() {
        b.host_key = lines;
        b.known_hosts_file = file;
    }
    b
}

pub fn schema() -> Schema {
    Settings::schema(
        "Connects to the access node of a TimescaleDB multi-node cluster (or to any PostgreSQL node) and to its data nodes. \
         Settings left out fall back to libpq's environment variables (`PGHOST`, `PGPORT`, `PGDATABASE`, `PGUSER`, \
         `PGPASSWORD`, `PGSSLMODE`, `PGCHANNELBINDING`, `PGSSLROOTCERT`, `PGCONNECT_TIMEOUT`) and the password file (`PGPASSFILE` or `~/.pgpass`).",
    )
}

/// The provider block, decoded, with fallbacks applied.
#[derive(Clone, Debug)]
pub struct ProviderConfig {
    pub access: ConnSpec,
    /// Data nodes given in the configuration; empty means discover them.
    pub data_nodes: BTreeMap<String, ConnSpec>,
    pub fanout: Fanout,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn password_from_passfile(host: &str, port: u16, database: &str, user: &str) -> Option<Secret> {
    let path = env("PGPASSFILE").or_else(|| env("HOME").map(|h| format!("{h}/.pgpass")))?;
    let text = std::fs::read_to_string(path).ok()?;
    passfile::lookup(&text, host, &port.to_string(), database, user).map(Secret::new)
}

fn parse_port(s: &str, path: AttrPath, d: &mut Diagnostics) -> u16 {
    match s.parse::<u16>() {
        Ok(p) if p > 0 => p,
        _ => {
            d.push_error(
                Some(path),
                "Invalid port",
                format!("{s:?} is not a TCP port (1-65535)."),
            );
            5432
        }
    }
}

impl ProviderConfig {
    /// Decodes a wholly known provider block.
    pub fn from_value(v: &Value) -> Result<ProviderConfig, Diagnostics> {
        let f = Settings::from_value(v)?;
        let host = f
            .host
            .or_else(|| env("PGHOST"))
            .unwrap_or_else(|| "localhost".into());
        let database = f
            .database
            .or_else(|| env("PGDATABASE"))
            .unwrap_or_else(|| "postgres".into());
        let user = f
            .username
            .or_else(|| env("PGUSER"))
            .unwrap_or_else(|| "postgres".into());
        let password = f.password.or_else(|| env("PGPASSWORD").map(Secret::new));
        let sslmode_text = f
            .sslmode
            .or_else(|| env("PGSSLMODE"))
            .unwrap_or_else(|| "prefer".into());
        let sslrootcert = f.sslrootcert.or_else(|| env("PGSSLROOTCERT"));
        let binding_text = f
            .channel_binding
            .or_else(|| env("PGCHANNELBINDING"))
            .unwrap_or_else(|| "prefer".into());
        let fanout = match f.fanout.as_deref() {
            Some("distributed_exec") => Fanout::DistributedExec,
            Some("direct") => Fanout::Direct,
            _ => Fanout::Auto,
        };

        let mut d = Diagnostics::new();
        let (port, timeout, sslmode) =
            connection_settings(f.port, f.connect_timeout, &sslmode_text, &mut d);
        if matches!(sslmode, SslMode::VerifyCa | SslMode::VerifyFull) && sslrootcert.is_none() {
            d.push_error(Some(AttrPath::attr(SSLROOTCERT)), "Missing sslrootcert", format!("sslmode {sslmode_text:?} verifies the node's certificate and needs `sslrootcert`."));
        }
        let channel_binding =
            parse_channel_binding(&binding_text, AttrPath::attr(CHANNEL_BINDING), &mut d);
        let clientcert = f.clientcert.map(|c| (c.cert, c.key));
        let mut bastions = Bastions {
            timeout: Duration::from_secs(timeout.max(1) as u64),
            made: Vec::new(),
        };
        let bastion_parts = f.bastion.map(BastionParts::from);
        let bastion = bastion_parts
            .clone()
            .and_then(|b| bastion_spec(b, &BastionAt::Block, &mut d))
            .map(|spec| bastions.get(spec));
        let password = password.or_else(|| password_from_passfile(&host, port, &database, &user));
        let access = ConnSpec {
            host,
            port,
            database,
            user,
            password,
            sslmode,
            sslrootcert,
            clientcert,
            channel_binding,
            connect_timeout: Duration::from_secs(timeout.max(1) as u64),
            bastion,
        };
        check_binding_has_tls(&access, AttrPath::attr(CHANNEL_BINDING), &mut d);
        let data_nodes = data_node_specs(
            f.data_nodes.unwrap_or_default(),
            &access,
            (bastion_parts.as_ref(), &mut bastions),
            &mut d,
        );
        d.into_result()?;
        Ok(ProviderConfig {
            access,
            data_nodes,
            fanout,
        })
    }
}

/// A bastion's settings before they are checked: the provider's `bastion`
/// block, or a `data_nodes` entry's `bastion_*` keys over it.
#[derive(Clone, Default)]
struct BastionParts {
    host: Option<String>,
    port: Option<String>,
    user: Option<String>,
    private_key: Option<Secret>,
    /// `true` or `false` as written (an entry's values are strings).
    agent: Option<String>,
    agent_identity: Option<String>,
    host_key: Option<Vec<String>>,
    known_hosts_file: Option<String>,
}

impl From<BastionBlock> for BastionParts {
    fn from(b: BastionBlock) -> BastionParts {
        BastionParts {
            host: Some(b.host),
            port: b.port.map(|p| p.to_string()),
            user: Some(b.user),
            private_key: b.private_key,
            agent: b.agent.map(|a| a.to_string()),
            agent_identity: b.agent_identity,
            host_key: b.host_key,
            known_hosts_file: b.known_hosts_file,
        }
    }
}

/// Where a bastion's settings are written: the `bastion` block, or one
/// `data_nodes` entry (whose keys are the block's with `bastion_` before).
enum BastionAt {
    Block,
    Entry(AttrPath),
}

impl BastionAt {
    fn attr(&self, a: &str) -> AttrPath {
        match self {
            BastionAt::Block => AttrPath::attr(BASTION).then_attr(a),
            BastionAt::Entry(p) => p.clone().key(&format!("{BASTION_KEY_PREFIX}{a}")),
        }
    }

    fn whole(&self) -> AttrPath {
        match self {
            BastionAt::Block => AttrPath::attr(BASTION),
            BastionAt::Entry(p) => p.clone(),
        }
    }

    fn name(&self, a: &str) -> String {
        match self {
            BastionAt::Block => a.to_string(),
            BastionAt::Entry(_) => format!("{BASTION_KEY_PREFIX}{a}"),
        }
    }
}

/// A bastion's settings, checked on their attributes (the key is read here,
/// so a key that cannot be used fails the plan, not the first connection).
fn bastion_spec(b: BastionParts, at: &BastionAt, d: &mut Diagnostics) -> Option<BastionSpec> {
    let before = d.has_errors();
    let port = match &b.port {
        Some(p) => parse_port(p, at.attr(SSH_PORT), d),
        None => 22,
    };
    let auth = client_auth(&b, at, d);
    let mut required = |v: Option<String>, a: &str| {
        v.unwrap_or_else(|| {
            d.push_error(
                Some(at.whole()),
                "Missing bastion setting",
                format!(
                    "`{}` is required: there is no `bastion` block to take it from.",
                    at.name(a)
                ),
            );
            String::new()
        })
    };
    let host = required(b.host, SSH_HOST);
    let user = required(b.user, USER);
    let host_keys = match (b.host_key, b.known_hosts_file) {
        (Some(keys), None) => {
            if keys.is_empty() {
                d.push_error(
                    Some(at.attr(HOST_KEY)),
                    "No host key",
                    format!("`{}` needs at least one key.", at.name(HOST_KEY)),
                );
            } else if let Err(e) = BastionSpec::pinned_keys(&keys) {
                d.push_error(Some(at.attr(HOST_KEY)), "Invalid host key", e);
            }
            HostKeys::Pinned(keys)
        }
        (None, Some(path)) => HostKeys::KnownHosts(path),
        (Some(_), Some(_)) => {
            d.push_error(
                Some(at.attr(KNOWN_HOSTS_FILE)),
                "Two sources of host keys",
                format!(
                    "Give either `{}` or `{}`, not both.",
                    at.name(HOST_KEY),
                    at.name(KNOWN_HOSTS_FILE)
                ),
            );
            return None;
        }
        (None, None) => {
            d.push_error(
                Some(at.whole()),
                "Missing host key",
                format!(
                    "The bastion's host key is required, in `{}` or `{}`: the provider never trusts a \
                     bastion on first use. `ssh-keyscan -p <port> <host>` prints it; check it against the bastion's own \
                     `/etc/ssh/ssh_host_ed25519_key.pub` before pinning it.",
                    at.name(HOST_KEY),
                    at.name(KNOWN_HOSTS_FILE)
                ),
            );
            return None;
        }
    };
    let auth = auth?;
    if d.has_errors() != before {
        return None;
    }
    let spec = BastionSpec {
        host,
        port,
        user,
        auth,
        host_keys,
    };
    if let Err(e) = spec.check_auth() {
        let (a, summary) = match spec.auth {
            ClientAuth::Key(_) => (PRIVATE_KEY, "Unusable private key"),
            ClientAuth::Agent { .. } => (AGENT, "No SSH agent"),
        };
        d.push_error(Some(at.attr(a)), summary, e);
        return None;
    }
    Some(spec)
}

/// How the provider authenticates to a bastion: exactly one of a private
/// key and the agent.
fn client_auth(b: &BastionParts, at: &BastionAt, d: &mut Diagnostics) -> Option<ClientAuth> {
    let agent = match b.agent.as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            d.push_error(
                Some(at.attr(AGENT)),
                "Invalid value",
                format!("`{}` is `true` or `false`, not {other:?}.", at.name(AGENT)),
            );
            return None;
        }
    };
    match (&b.private_key, agent) {
        (Some(k), false) => {
            if b.agent_identity.is_some() {
                d.push_error(
                    Some(at.attr(AGENT_IDENTITY)),
                    "Agent identity without the agent",
                    format!(
                        "`{}` picks one of the SSH agent's keys; set `{} = true` or leave it out.",
                        at.name(AGENT_IDENTITY),
                        at.name(AGENT)
                    ),
                );
                return None;
            }
            Some(ClientAuth::Key(k.clone()))
        }
        (None, true) => Some(ClientAuth::Agent {
            identity: b.agent_identity.clone(),
        }),
        (Some(_), true) => {
            d.push_error(
                Some(at.attr(AGENT)),
                "Two ways to authenticate",
                format!(
                    "Give either `{}` or `{} = true`, not both.",
                    at.name(PRIVATE_KEY),
                    at.name(AGENT)
                ),
            );
            None
        }
        (None, false) => {
            d.push_error(
                Some(at.whole()),
                "Missing bastion setting",
                format!(
                    "`{}` or `{} = true` is required: the provider authenticates to the bastion with a key.",
                    at.name(PRIVATE_KEY),
                    at.name(AGENT)
                ),
            );
            None
        }
    }
}

/// The bastions of one provider block: one per distinct set of settings,
/// so nodes behind the same bastion share its SSH connection.
struct Bastions {
    timeout: Duration,
    made: Vec<Arc<Bastion>>,
}

impl Bastions {
    fn get(&mut self, spec: BastionSpec) -> Arc<Bastion> {
        if let Some(b) = self.made.iter().find(|b| *b.spec() == spec) {
            return b.clone();
        }
        let b = Arc::new(Bastion::new(spec, self.timeout));
        self.made.push(b.clone());
        b
    }
}

/// The port, connect timeout and sslmode, from the configuration or the
/// libpq environment variables, each checked on its attribute.
fn connection_settings(
    port_cfg: Option<i64>,
    timeout_cfg: Option<i64>,
    sslmode_text: &str,
    d: &mut Diagnostics,
) -> (u16, i64, SslMode) {
    let port = match port_cfg {
        Some(p) => parse_port(&p.to_string(), AttrPath::attr(PORT), d),
        None => env("PGPORT")
            .map(|p| parse_port(&p, AttrPath::attr(PORT), d))
            .unwrap_or(5432),
    };
    let timeout = timeout_cfg
        .or_else(|| env("PGCONNECT_TIMEOUT").and_then(|t| t.parse().ok()))
        .unwrap_or(15);
    if timeout < 1 {
        d.push_error(
            Some(AttrPath::attr(CONNECT_TIMEOUT)),
            "Invalid timeout",
            "`connect_timeout` must be at least 1 second.",
        );
    }
    let sslmode = SslMode::parse(sslmode_text).unwrap_or_else(|| {
        d.push_error(
            Some(AttrPath::attr(SSLMODE)),
            "Invalid sslmode",
            format!("{sslmode_text:?} is not one of {}.", SSL_MODES.join(", ")),
        );
        SslMode::Prefer
    });
    (port, timeout, sslmode)
}

fn parse_channel_binding(text: &str, path: AttrPath, d: &mut Diagnostics) -> ChannelBinding {
    ChannelBinding::parse(text).unwrap_or_else(|| {
        d.push_error(
            Some(path),
            "Invalid channel_binding",
            format!("{text:?} is not one of {}.", CHANNEL_BINDINGS.join(", ")),
        );
        ChannelBinding::Prefer
    })
}

/// `channel_binding = "require"` binds to TLS, which `sslmode = "disable"`
/// (or a Unix socket) never has: every login would fail.
fn check_binding_has_tls(spec: &ConnSpec, path: AttrPath, d: &mut Diagnostics) {
    if spec.channel_binding != ChannelBinding::Require {
        return;
    }
    let why = if spec.host.starts_with('/') {
        "the node is reached over a Unix socket, where PostgreSQL offers no TLS"
    } else if spec.sslmode == SslMode::Disable {
        "`sslmode` is `disable`"
    } else {
        return;
    };
    d.push_error(
        Some(path),
        "Channel binding without TLS",
        format!("`channel_binding = \"require\"` needs a TLS connection to bind to, and {why}: no login could succeed. Use an `sslmode` other than `disable` and a TCP address."),
    );
}

/// Each `data_nodes` entry as a connection: the access node's settings
/// with the entry's own over them.
fn data_node_specs(
    m: BTreeMap<String, BTreeMap<String, Option<String>>>,
    access: &ConnSpec,
    (bastion, bastions): (Option<&BastionParts>, &mut Bastions),
    d: &mut Diagnostics,
) -> BTreeMap<String, ConnSpec> {
    let mut data_nodes = BTreeMap::new();
    for (name, fields) in m {
        let path = AttrPath::attr(DATA_NODES).key(&name);
        let get = |k: &str| fields.get(k).cloned().flatten();
        for k in fields.keys() {
            if !DATA_NODE_KEYS.contains(&k.as_str()) {
                d.push_error(
                    Some(path.clone().key(k)),
                    "Unknown data node setting",
                    format!("{k:?} is not one of {}.", DATA_NODE_KEYS.join(", ")),
                );
            }
        }
        let mut spec = access.clone();
        if let Some(h) = get("host") {
            spec.host = h;
        }
        if let Some(p) = get("port") {
            spec.port = parse_port(&p, path.clone().key("port"), d);
        }
        if let Some(db) = get("database") {
            spec.database = db;
        }
        if let Some(u) = get("username") {
            spec.user = u;
        }
        if let Some(m) = get("sslmode") {
            match SslMode::parse(&m) {
                Some(mode) => spec.sslmode = mode,
                None => d.push_error(
                    Some(path.clone().key("sslmode")),
                    "Invalid sslmode",
                    format!("{m:?} is not one of {}.", SSL_MODES.join(", ")),
                ),
            }
        }
        if let Some(b) = get("channel_binding") {
            spec.channel_binding =
                parse_channel_binding(&b, path.clone().key("channel_binding"), d);
        }
        if get("channel_binding").is_some() || get("sslmode").is_some() || get("host").is_some() {
            let at = if get("channel_binding").is_some() {
                path.clone().key("channel_binding")
            } else {
                path.clone()
            };
            check_binding_has_tls(&spec, at, d);
        }
        if fields
            .keys()
            .any(|k| k.starts_with(BASTION_KEY_PREFIX) && DATA_NODE_KEYS.contains(&k.as_str()))
        {
            let parts = entry_bastion(bastion, &get);
            spec.bastion =
                bastion_spec(parts, &BastionAt::Entry(path.clone()), d).map(|b| bastions.get(b));
        }
        spec.password = match get("password") {
            Some(p) => Some(Secret::new(p)),
            None => password_from_passfile(&spec.host, spec.port, &spec.database, &spec.user)
                .or(spec.password),
        };
        if name == crate::provider::ACCESS_NODE {
            d.push_error(
                Some(path),
                "Reserved node name",
                format!(
                    "{:?} names the access node; pick another name for this data node.",
                    crate::provider::ACCESS_NODE
                ),
            );
            continue;
        }
        data_nodes.insert(name, spec);
    }
    data_nodes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::object;

    fn config(pairs: Vec<(&'static str, Value)>) -> Value {
        let mut v = object(Settings::attributes().iter().map(|a| (a.name, Value::Null)));
        for (k, x) in pairs {
            v.set_attr(k, x);
        }
        v
    }

    #[test]
    fn data_nodes_inherit_the_access_node_settings() {
        let v = config(vec![
            (HOST, Value::string("10.0.0.1")),
            (PORT, Value::int(6000)),
            (USERNAME, Value::string("admin")),
            (PASSWORD, Value::string("pw")),
            (SSLMODE, Value::string("disable")),
            (
                DATA_NODES,
                Value::Map(BTreeMap::from([(
                    "dn1".to_string(),
                    Value::map_of_strings([("port", "6001")]),
                )])),
            ),
        ]);
        let c = ProviderConfig::from_value(&v).unwrap();
        let dn = &c.data_nodes["dn1"];
        assert_eq!(
            (dn.host.as_str(), dn.port, dn.user.as_str()),
            ("10.0.0.1", 6001, "admin")
        );
        assert_eq!(dn.password.as_ref().map(|p| p.expose()), Some("pw"));
    }

    #[test]
    fn bad_settings_point_at_their_attribute() {
        let v = config(vec![
            (SSLMODE, Value::string("verify-full")),
            (
                DATA_NODES,
                Value::Map(BTreeMap::from([(
                    "dn1".to_string(),
                    Value::map_of_strings([("port", "x"), ("hots", "y")]),
                )])),
            ),
        ]);
        let d = ProviderConfig::from_value(&v).unwrap_err();
        let paths: Vec<String> =
            d.0.iter()
                .map(|x| x.path.clone().unwrap_or_default().to_string())
                .collect();
        assert!(paths.contains(&"sslrootcert".to_string()), "{paths:?}");
        assert!(
            paths.contains(&"data_nodes[\"dn1\"][\"port\"]".to_string()),
            "{paths:?}"
        );
        assert!(
            paths.contains(&"data_nodes[\"dn1\"][\"hots\"]".to_string()),
            "{paths:?}"
        );
    }
}

#[cfg(test)]
mod bastion_tests {
    use super::*;
    use crate::model::Model;
    use crate::schema::object;

    const KEY_LINE: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJdD7y3aLq454yWBdwLWbieU1ebz9/cu7/QEXn9OIeZJ";

    fn with_bastion(b: BastionBlock) -> Value {
        let mut v = object(Settings::attributes().iter().map(|a| (a.name, Value::Null)));
        v.set_attr(HOST, Value::string("10.0.0.1"));
        v.set_attr(BASTION, crate::model::Field::encode(&Some(b)));
        v
    }

    fn block(host_key: Option<Vec<String>>, known_hosts: Option<&str>, key: &str) -> BastionBlock {
        BastionBlock {
            host: "bastion.example".into(),
            port: None,
            user: "tf".into(),
            private_key: Some(Secret::new(key)),
            agent: None,
            agent_identity: None,
            host_key,
            known_hosts_file: known_hosts.map(str::to_string),
        }
    }

    fn errors_on(v: &Value) -> Vec<(String, String)> {
        ProviderConfig::from_value(v)
            .unwrap_err()
            .0
            .iter()
            .map(|d| {
                (
                    d.path.as_ref().map(|p| p.to_string()).unwrap_or_default(),
                    d.summary.clone(),
                )
            })
            .collect()
    }

    #[test]
    fn a_bastion_needs_its_host_key_and_a_usable_private_key_on_the_attribute() {
        let key = "-----BEGIN OPENSSH PRIVATE KEY-----\nbm90IGEga2V5\n-----END OPENSSH PRIVATE KEY-----\n";
        let e = errors_on(&with_bastion(block(None, None, key)));
        assert!(
            e.contains(&("bastion".into(), "Missing host key".into())),
            "{e:?}"
        );
        let e = errors_on(&with_bastion(block(
            Some(vec![KEY_LINE.into()]),
            Some("/k"),
            key,
        )));
        assert!(
            e.contains(&(
                "bastion.known_hosts_file".into(),
                "Two sources of host keys".into()
            )),
            "{e:?}"
        );
        let e = errors_on(&with_bastion(block(
            Some(vec!["ssh-ed25519 nope".into()]),
            None,
            key,
        )));
        assert!(
            e.contains(&("bastion.host_key".into(), "Invalid host key".into())),
            "{e:?}"
        );
        let e = errors_on(&with_bastion(block(Some(vec![KEY_LINE.into()]), None, key)));
        assert_eq!(
            e,
            vec![("bastion.private_key".into(), "Unusable private key".into())]
        );
        let shown = format!(
            "{:?}",
            ProviderConfig::from_value(&with_bastion(block(
                Some(vec![KEY_LINE.into()]),
                None,
                key
            )))
        );
        assert!(!shown.contains("bm90IGEga2V5"), "{shown}");
    }

    /// An unencrypted OpenSSH private key made from `seed`.
    fn private_key(seed: u8) -> String {
        use russh::keys::ssh_key::{private::Ed25519Keypair, LineEnding, PrivateKey};
        PrivateKey::from(Ed25519Keypair::from_seed(&[seed; 32]))
            .to_openssh(LineEnding::LF)
            .unwrap()
            .to_string()
    }

    fn with_entries(b: Option<BastionBlock>, entries: &[(&str, Vec<(&str, String)>)]) -> Value {
        let mut v = object(Settings::attributes().iter().map(|a| (a.name, Value::Null)));
        v.set_attr(HOST, Value::string("10.0.0.1"));
        if let Some(b) = b {
            v.set_attr(BASTION, crate::model::Field::encode(&Some(b)));
        }
        v.set_attr(
            DATA_NODES,
            Value::Map(
                entries
                    .iter()
                    .map(|(n, kv)| {
                        (
                            n.to_string(),
                            Value::map_of_strings(kv.iter().map(|(k, v)| (*k, v.as_str()))),
                        )
                    })
                    .collect(),
            ),
        );
        v
    }

    #[test]
    fn a_data_node_behind_its_own_bastion_takes_the_rest_from_the_block_and_equal_bastions_share_one(
    ) {
        let other =
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBDSpcc0UbRE3G84Cgal1k26zhY+31vkXLzP0hjPUdxd";
        let v = with_entries(
            Some(block(Some(vec![KEY_LINE.into()]), None, &private_key(1))),
            &[
                ("dn1", vec![("port", "6001".into())]),
                (
                    "dn2",
                    vec![
                        ("bastion_host", "bastion-eu.example".into()),
                        ("bastion_host_key", format!("{other}\n")),
                    ],
                ),
                (
                    "dn3",
                    vec![
                        ("bastion_host", "bastion-eu.example".into()),
                        ("bastion_host_key", other.into()),
                    ],
                ),
                (
                    "dn4",
                    vec![
                        ("bastion_port", "2222".into()),
                        ("bastion_private_key", private_key(2)),
                    ],
                ),
            ],
        );
        let c = ProviderConfig::from_value(&v).unwrap();
        let access = c.access.bastion.clone().unwrap();
        let at = |n: &str| c.data_nodes[n].bastion.clone().unwrap();
        assert!(Arc::ptr_eq(&access, &at("dn1")));
        assert!(
            Arc::ptr_eq(&at("dn2"), &at("dn3")),
            "one SSH connection per bastion"
        );
        assert!(!Arc::ptr_eq(&access, &at("dn2")));
        let eu = at("dn2").spec().clone();
        assert_eq!(
            (eu.host.as_str(), eu.port, eu.user.as_str()),
            ("bastion-eu.example", 22, "tf")
        );
        assert_eq!(eu.host_keys, HostKeys::Pinned(vec![other.into()]));
        assert!(eu.auth == access.spec().auth);
        let dn4 = at("dn4").spec().clone();
        assert_eq!((dn4.host.as_str(), dn4.port), ("bastion.example", 2222));
        assert_eq!(dn4.host_keys, HostKeys::Pinned(vec![KEY_LINE.into()]));
        assert!(dn4.auth != access.spec().auth);
    }

    #[test]
    fn the_agent_or_a_key_exactly_one_and_an_entry_replaces_the_blocks_way() {
        let agent = |b: &mut BastionBlock| {
            b.agent = Some(true);
        };
        let mut both = block(Some(vec![KEY_LINE.into()]), None, &private_key(1));
        agent(&mut both);
        assert_eq!(
            errors_on(&with_bastion(both)),
            vec![("bastion.agent".into(), "Two ways to authenticate".into())]
        );
        let mut neither = block(Some(vec![KEY_LINE.into()]), None, "");
        neither.private_key = None;
        assert_eq!(
            errors_on(&with_bastion(neither.clone())),
            vec![("bastion".into(), "Missing bastion setting".into())]
        );
        neither.agent_identity = Some("ci@runner".into());
        let mut keyed = neither.clone();
        keyed.private_key = Some(Secret::new(private_key(1)));
        assert_eq!(
            errors_on(&with_bastion(keyed)),
            vec![(
                "bastion.agent_identity".into(),
                "Agent identity without the agent".into()
            )]
        );
        let e = errors_on(&with_entries(
            Some(block(Some(vec![KEY_LINE.into()]), None, &private_key(1))),
            &[("dn1", vec![("bastion_agent", "yes".into())])],
        ));
        assert_eq!(
            e,
            vec![(
                "data_nodes[\"dn1\"][\"bastion_agent\"]".into(),
                "Invalid value".into()
            )]
        );

        // An entry's agent replaces the block's key; its key replaces the
        // block's agent and the identity that went with it.
        let keyed = BastionParts::from(block(Some(vec![KEY_LINE.into()]), None, &private_key(1)));
        let entry = |kv: &'static [(&'static str, &'static str)]| {
            move |k: &str| kv.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
        };
        let p = entry_bastion(Some(&keyed), &entry(&[("bastion_agent", "true")]));
        assert!(p.private_key.is_none() && p.agent.as_deref() == Some("true"));
        let mut agented = keyed.clone();
        agented.private_key = None;
        agented.agent = Some("true".into());
        agented.agent_identity = Some("ci@runner".into());
        let p = entry_bastion(Some(&agented), &entry(&[("bastion_private_key", "/k")]));
        assert!(p.private_key.is_some() && p.agent.is_none() && p.agent_identity.is_none());
        let p = entry_bastion(
            Some(&agented),
            &entry(&[("bastion_agent_identity", "eu@runner")]),
        );
        assert_eq!(
            (p.agent.as_deref(), p.agent_identity.as_deref()),
            (Some("true"), Some("eu@runner"))
        );
    }

    #[test]
    fn a_data_node_bastion_without_a_block_needs_every_setting_and_errors_point_at_its_keys() {
        let e = errors_on(&with_entries(
            None,
            &[("dn1", vec![("bastion_host", "b.example".into())])],
        ));
        for (path, summary) in [
            ("data_nodes[\"dn1\"]", "Missing bastion setting"),
            ("data_nodes[\"dn1\"]", "Missing host key"),
        ] {
            assert!(e.contains(&(path.into(), summary.into())), "{e:?}");
        }
        let e = errors_on(&with_entries(
            Some(block(Some(vec![KEY_LINE.into()]), None, &private_key(1))),
            &[(
                "dn1",
                vec![
                    ("bastion_port", "x".into()),
                    ("bastion_host_key", "ssh-ed25519 nope".into()),
                    ("bastion_private_key", "-----BEGIN OPENSSH PRIVATE KEY-----\nbm90IGEga2V5\n-----END OPENSSH PRIVATE KEY-----\n".into()),
                ],
            )],
        ));
        assert!(
            e.contains(&(
                "data_nodes[\"dn1\"][\"bastion_port\"]".into(),
                "Invalid port".into()
            )),
            "{e:?}"
        );
        assert!(
            e.contains(&(
                "data_nodes[\"dn1\"][\"bastion_host_key\"]".into(),
                "Invalid host key".into()
            )),
            "{e:?}"
        );
        let e = errors_on(&with_entries(
            Some(block(Some(vec![KEY_LINE.into()]), None, &private_key(1))),
            &[(
                "dn1",
                vec![("bastion_private_key", "-----BEGIN OPENSSH PRIVATE KEY-----\nbm90IGEga2V5\n-----END OPENSSH PRIVATE KEY-----\n".into())],
            )],
        ));
        assert_eq!(
            e,
            vec![(
                "data_nodes[\"dn1\"][\"bastion_private_key\"]".into(),
                "Unusable private key".into()
            )]
        );
    }
}
