//! The provider block: schema and typed configuration, with libpq's
//! environment variables and password file as fallbacks.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::diag::{AttrPath, Diagnostics};
use crate::model::Model as _;
use crate::node::{ChannelBinding, ConnSpec, SslMode, CHANNEL_BINDINGS, SSL_MODES};
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
                 keys left out take the access node's value. When not set, the data nodes are discovered from \
                 `timescaledb_information.data_nodes` on the access node. Sensitive, since an entry may hold a password.",
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
];

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
        };
        check_binding_has_tls(&access, AttrPath::attr(CHANNEL_BINDING), &mut d);
        let data_nodes = data_node_specs(f.data_nodes.unwrap_or_default(), &access, &mut d);
        d.into_result()?;
        Ok(ProviderConfig {
            access,
            data_nodes,
            fanout,
        })
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
