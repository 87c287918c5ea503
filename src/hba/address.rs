//! Canonical forms of the address field.

use std::net::IpAddr;

/// Normalises an address (and an optional separate netmask, the older
/// two-field form) to what the provider writes and compares: `a.b.c.d/n`,
/// an IPv6 CIDR, a keyword (`all`, `samehost`, `samenet`) or a host name.
/// A bare IP address becomes a single-host CIDR. An address with bits set
/// outside its mask is refused: PostgreSQL would silently widen it.
pub fn normalize_address(addr: &str, netmask: Option<&str>) -> Result<String, String> {
    check_address(addr, netmask).map_err(|(_, m)| m)
}

/// Which of the two fields a bad address is the fault of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddressFault {
    Address,
    Netmask,
}

/// As [`normalize_address`], saying which field is at fault.
pub fn check_address(addr: &str, netmask: Option<&str>) -> Result<String, (AddressFault, String)> {
    use AddressFault::{Address, Netmask};
    // With a netmask, a prefix too long or bits outside it are the mask's.
    let mask_fault = if netmask.is_some() { Netmask } else { Address };
    if matches!(addr, "all" | "samehost" | "samenet") {
        if netmask.is_some() {
            return Err((Netmask, format!("`{addr}` takes no netmask")));
        }
        return Ok(addr.to_string());
    }
    let (ip_text, prefix) = match (addr.split_once('/'), netmask) {
        (Some(_), Some(_)) => {
            return Err((
                Netmask,
                "give either a CIDR prefix or a netmask, not both".into(),
            ))
        }
        (Some((ip, p)), None) => (
            ip,
            Some(
                p.parse::<u8>()
                    .map_err(|_| (Address, format!("invalid CIDR prefix in {addr:?}")))?,
            ),
        ),
        (None, Some(mask)) => (addr, Some(mask_to_prefix(mask).map_err(|m| (Netmask, m))?)),
        (None, None) => (addr, None),
    };
    let ip: IpAddr = match ip_text.parse() {
        Ok(ip) => ip,
        Err(_) if prefix.is_none() && is_hostname(addr) => return Ok(canonical_hostname(addr)),
        Err(_) => {
            return Err((
                Address,
                format!("{addr:?} is not an IP address, CIDR range, keyword or host name"),
            ))
        }
    };
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let prefix = prefix.unwrap_or(max);
    if prefix > max {
        return Err((mask_fault, format!("prefix /{prefix} is too long for {ip}")));
    }
    let network = mask_ip(ip, prefix);
    if network != ip {
        return Err((
            mask_fault,
            format!(
                "{ip}/{prefix} has bits set outside its mask; write {network}/{prefix} for the network or {ip}/{max} for the single host"
            ),
        ));
    }
    Ok(format!("{ip}/{prefix}"))
}

/// Host names compare without case in PostgreSQL, so they are written in
/// lower case; but its keywords are matched with case, and `ALL` or
/// `SameNet` is a host name to the server: such a name is written in upper
/// case, never as the keyword it would become in lower case.
fn canonical_hostname(addr: &str) -> String {
    let lower = addr.to_ascii_lowercase();
    if matches!(lower.as_str(), "all" | "samehost" | "samenet") {
        addr.to_ascii_uppercase()
    } else {
        lower
    }
}

fn is_hostname(s: &str) -> bool {
    let body = s.strip_prefix('.').unwrap_or(s);
    !body.is_empty()
        && body.len() <= 253
        && body.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !label.starts_with('-')
        })
}

fn mask_to_prefix(mask: &str) -> Result<u8, String> {
    let ip: IpAddr = mask
        .parse()
        .map_err(|_| format!("invalid IP mask {mask:?}"))?;
    let bits: u128 = match ip {
        IpAddr::V4(v) => u128::from(u32::from(v)) << 96,
        IpAddr::V6(v) => u128::from(v),
    };
    let ones = bits.leading_ones();
    if bits.checked_shl(ones).unwrap_or(0) != 0 {
        return Err(format!("IP mask {mask:?} is not contiguous"));
    }
    Ok(ones as u8)
}

/// The network address of `ip` under a prefix.
pub(crate) fn mask_ip(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v) => {
            let m = if prefix == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(prefix))
            };
            IpAddr::V4((u32::from(v) & m).into())
        }
        IpAddr::V6(v) => {
            let m = if prefix == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(prefix))
            };
            IpAddr::V6((u128::from(v) & m).into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_forms() {
        assert_eq!(
            normalize_address("192.0.2.20", None).unwrap(),
            "192.0.2.20/32"
        );
        assert_eq!(
            normalize_address("192.0.2.0", Some("255.255.255.0")).unwrap(),
            "192.0.2.0/24"
        );
        assert_eq!(
            normalize_address("2001:0db8:0000::/32", None).unwrap(),
            "2001:db8::/32"
        );
        assert_eq!(normalize_address("::1", None).unwrap(), "::1/128");
        assert_eq!(
            normalize_address("DN1.Example.com", None).unwrap(),
            "dn1.example.com"
        );
        assert_eq!(
            normalize_address(".example.com", None).unwrap(),
            ".example.com"
        );
        assert_eq!(normalize_address("samenet", None).unwrap(), "samenet");
        // Keywords have case; the server reads these as host names.
        assert_eq!(normalize_address("ALL", None).unwrap(), "ALL");
        assert_eq!(normalize_address("SameNet", None).unwrap(), "SAMENET");
        assert_eq!(normalize_address("samehoST", None).unwrap(), "SAMEHOST");
        assert_eq!(normalize_address("Db.Example", None).unwrap(), "db.example");
    }

    #[test]
    fn refusals() {
        assert!(normalize_address("192.0.2.20/24", None)
            .unwrap_err()
            .contains("192.0.2.0/24"));
        assert!(normalize_address("10.0.0.0", Some("255.0.255.0")).is_err());
        assert!(normalize_address("10.0.0.0/33", None).is_err());
        assert!(normalize_address("not an address", None).is_err());
        assert!(normalize_address("all", Some("255.0.0.0")).is_err());
        let fault = |a: &str, m: Option<&str>| check_address(a, m).unwrap_err().0;
        assert_eq!(
            fault("10.0.0.0", Some("255.0.255.0")),
            AddressFault::Netmask
        );
        assert_eq!(fault("10.0.0.1", Some("255.0.0.0")), AddressFault::Netmask);
        assert_eq!(fault("10.0.0.1/8", None), AddressFault::Address);
        assert_eq!(fault("all", Some("255.0.0.0")), AddressFault::Netmask);
        assert_eq!(
            fault("10.0.0.0/8", Some("255.0.0.0")),
            AddressFault::Netmask
        );
        assert_eq!(
            fault("not an address", Some("255.0.0.0")),
            AddressFault::Address
        );
    }
}
