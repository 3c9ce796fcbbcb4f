//! `network.*`: this host's interfaces and addresses, read from `ip addr show` (as
//! Salt does when iproute2 is present), in the shapes of Salt's `network` module.

use super::host::{fnmatch, CommandLine, Host, Runner, WordList};
use super::test::NoArgs;
use super::{opt, CallError, Context, Function, Output, Param};
use brine_proto::{Map, Value};
use serde::Deserialize;
use serde_json::json;
use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

fn ip_addr_show() -> CommandLine {
    CommandLine::new("ip").args(["addr", "show"])
}

/// A dotted IPv4 netmask from a prefix length (`24` → `255.255.255.0`).
fn ipv4_netmask(prefix: u32) -> String {
    let bits = if prefix == 0 { 0 } else { u32::MAX << (32 - prefix.min(32)) };
    Ipv4Addr::from(bits).to_string()
}

/// The word after `key` in an `ip` line (`brd 10.0.0.255`, `scope global`).
fn after<'a>(cols: &[&'a str], key: &str) -> Option<&'a str> {
    cols.iter().position(|c| *c == key).and_then(|i| cols.get(i + 1)).copied()
}

/// Reads `ip addr show` into Salt's `network.interfaces` map:
/// `{name: {up, hwaddr, inet: [{address, netmask, broadcast, label}], inet6: [{address,
/// prefixlen, scope}], secondary: […], parent}}`, interfaces in `ip`'s order.
fn parse_ip_addr(out: &str) -> Map {
    let mut ifaces = Map::new();
    let mut current: Option<(String, Map)> = None;
    for line in out.lines() {
        if line.starts_with(|c: char| c.is_ascii_digit()) {
            if let Some((name, data)) = current.take() {
                ifaces.insert(name, Value::Object(data));
            }
            current = parse_header(line);
            continue;
        }
        let Some((_, data)) = current.as_mut() else { continue };
        let cols: Vec<&str> = line.split_whitespace().collect();
        let [kind, value, ..] = cols[..] else { continue };
        let label = cols.last().copied().unwrap_or_default();
        let (address, prefix) = value.split_once('/').unwrap_or((value, ""));
        let secondary = cols.contains(&"secondary");
        let entry = match kind {
            "inet" => {
                let prefix: u32 = prefix.parse().unwrap_or(32);
                let mut m = Map::new();
                if secondary {
                    m.insert("type".into(), "inet".into());
                }
                m.insert("address".into(), address.into());
                m.insert("netmask".into(), ipv4_netmask(prefix).into());
                m.insert("broadcast".into(), after(&cols, "brd").map_or(Value::Null, Value::from));
                m.insert("label".into(), label.into());
                m
            }
            "inet6" => {
                let mut m = Map::new();
                if secondary {
                    m.insert("type".into(), "inet6".into());
                }
                m.insert("address".into(), address.into());
                m.insert("prefixlen".into(), if prefix.is_empty() { "128" } else { prefix }.into());
                m.insert("scope".into(), after(&cols, "scope").map_or(Value::Null, Value::from));
                m
            }
            k if k.starts_with("link") => {
                data.insert("hwaddr".into(), value.into());
                continue;
            }
            _ => continue,
        };
        let list = if secondary { "secondary" } else { kind };
        if let Value::Array(items) = data.entry(list).or_insert_with(|| Value::Array(Vec::new())) {
            items.push(Value::Object(entry));
        }
    }
    if let Some((name, data)) = current {
        ifaces.insert(name, Value::Object(data));
    }
    ifaces
}

/// Reads an interface line, `2: eth0.100@eth0: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu …`,
/// into its name and `{up, parent}`.
fn parse_header(line: &str) -> Option<(String, Map)> {
    let (_, rest) = line.split_once(':')?;
    let rest = rest.trim_start();
    let (names, rest) = rest.split_once(": <")?;
    let (flags, _) = rest.split_once('>')?;
    let (name, parent) = match names.split_once('@') {
        Some((n, p)) => (n, Some(p)),
        None => (names, None),
    };
    let mut data = Map::new();
    data.insert("up".into(), Value::Bool(flags.split(',').any(|f| f == "UP")));
    if let Some(parent) = parent.filter(|p| !p.is_empty()) {
        data.insert("parent".into(), parent.into());
    }
    Some((name.to_string(), data))
}

/// The addresses of family `proto` (`inet` or `inet6`) on the interfaces matching
/// `patterns` (all when none), secondary ones included, loopback left out unless
/// asked for; sorted and without repeats.
fn addresses(ifaces: &Map, patterns: Option<&[String]>, proto: &str, include_loopback: bool) -> Vec<IpAddr> {
    let mut found = BTreeSet::new();
    for (name, data) in ifaces {
        if patterns.is_some_and(|ps| !ps.iter().any(|p| fnmatch(p, name))) {
            continue;
        }
        let primary = data.get(proto).and_then(Value::as_array).into_iter().flatten();
        let secondary = data
            .get("secondary")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|a| a.get("type").and_then(Value::as_str) == Some(proto));
        for addr in primary.chain(secondary) {
            let Some(ip) = addr.get("address").and_then(Value::as_str).and_then(|s| s.parse::<IpAddr>().ok()) else {
                continue;
            };
            if include_loopback || !ip.is_loopback() {
                found.insert(ip);
            }
        }
    }
    found.into_iter().collect()
}

/// A network in CIDR notation; like Python's `ip_network`, host bits must be zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cidr {
    net: IpAddr,
    prefix: u32,
}

impl Cidr {
    fn parse(text: &str) -> Result<Cidr, CallError> {
        let bad = |why: &str| CallError::failed(format!("Invalid CIDR '{text}': {why}"));
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let net: IpAddr = addr.trim().parse().map_err(|_| bad("not an IP address"))?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.trim().parse::<u32>().ok().filter(|p| *p <= max).ok_or_else(|| bad("bad prefix length"))?,
            None => max,
        };
        let cidr = Cidr { net, prefix };
        if !cidr.contains(net) || cidr.masked(net) != net {
            return Err(bad("host bits are set"));
        }
        Ok(cidr)
    }

    fn masked(&self, ip: IpAddr) -> IpAddr {
        match ip {
            IpAddr::V4(v4) => {
                let mask = if self.prefix == 0 { 0 } else { u32::MAX << (32 - self.prefix) };
                IpAddr::V4(Ipv4Addr::from(u32::from(v4) & mask))
            }
            IpAddr::V6(v6) => {
                let mask = if self.prefix == 0 { 0 } else { u128::MAX << (128 - self.prefix) };
                IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask))
            }
        }
    }

    fn contains(&self, ip: IpAddr) -> bool {
        ip.is_ipv4() == self.net.is_ipv4() && self.masked(ip) == self.net
    }
}

/// Python's `ipaddress.IPv4Address.is_private` (3.11), which Salt's `type=private`
/// and `type=public` use.
fn is_private_v4(ip: Ipv4Addr) -> bool {
    const PRIVATE: [([u8; 4], u32); 14] = [
        ([0, 0, 0, 0], 8),
        ([10, 0, 0, 0], 8),
        ([127, 0, 0, 0], 8),
        ([169, 254, 0, 0], 16),
        ([172, 16, 0, 0], 12),
        ([192, 0, 0, 0], 29),
        ([192, 0, 0, 170], 31),
        ([192, 0, 2, 0], 24),
        ([192, 168, 0, 0], 16),
        ([198, 18, 0, 0], 15),
        ([198, 51, 100, 0], 24),
        ([203, 0, 113, 0], 24),
        ([240, 0, 0, 0], 4),
        ([255, 255, 255, 255], 32),
    ];
    PRIVATE.iter().any(|(net, prefix)| Cidr { net: IpAddr::from(*net), prefix: *prefix }.contains(IpAddr::V4(ip)))
}

fn interfaces(r: &dyn Runner) -> Result<Map, CallError> {
    Ok(parse_ip_addr(&r.run_ok(&ip_addr_show())?.stdout))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IpAddrsArgs {
    #[serde(default)]
    interface: Option<WordList>,
    #[serde(default)]
    include_loopback: bool,
    #[serde(default)]
    cidr: Option<String>,
    /// `public` or `private` (IPv4 only).
    #[serde(default, rename = "type")]
    kind: Option<String>,
}

fn ip_addrs(ifaces: &Map, a: &IpAddrsArgs, proto: &str) -> Result<Value, CallError> {
    let cidr = a.cidr.as_deref().map(Cidr::parse).transpose()?;
    let patterns = a.interface.as_ref().map(|w| w.0.as_slice());
    let found = addresses(ifaces, patterns, proto, a.include_loopback)
        .into_iter()
        .filter(|ip| cidr.is_none_or(|c| c.contains(*ip)))
        .filter(|ip| match (a.kind.as_deref(), ip) {
            (Some("public"), IpAddr::V4(v4)) => !is_private_v4(*v4),
            (Some("private"), IpAddr::V4(v4)) => is_private_v4(*v4),
            _ => true,
        })
        .map(|ip| ip.to_string())
        .collect::<Vec<_>>();
    Ok(json!(found))
}

pub struct Interfaces;
impl Function for Interfaces {
    const NAME: &'static str = "network.interfaces";
    const DOC: &'static str = "Returns every interface: {name: {up, hwaddr, inet: [{address, netmask, \
        broadcast, label}], inet6: [{address, prefixlen, scope}], secondary, parent}}, from ip addr \
        show.\n\n\
        CLI example: brine run '*' network.interfaces";
    const PARAMS: &'static [Param] = &[];
    type Args = NoArgs;
    fn call(&self, ctx: &Context, _: NoArgs) -> Result<Output, CallError> {
        Ok(Output::ok(Value::Object(interfaces(&Host::new(ctx))?)))
    }
}

pub struct IpAddrs;
impl Function for IpAddrs {
    const NAME: &'static str = "network.ip_addrs";
    const DOC: &'static str = "Returns the host's IPv4 addresses, sorted; 127.0.0.1 only with \
        include_loopback=True.\n\n\
        interface: only these interfaces (a name, a glob, or a list). cidr: only addresses in this \
        network (10.0.0.0/8). type: public or private.\n\n\
        CLI example: brine run '*' network.ip_addrs cidr=10.0.0.0/8";
    const PARAMS: &'static [Param] = &[opt("interface"), opt("include_loopback"), opt("cidr"), opt("type")];
    type Args = IpAddrsArgs;
    fn call(&self, ctx: &Context, a: IpAddrsArgs) -> Result<Output, CallError> {
        Ok(Output::ok(ip_addrs(&interfaces(&Host::new(ctx))?, &a, "inet")?))
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IpAddrs6Args {
    #[serde(default)]
    interface: Option<WordList>,
    #[serde(default)]
    include_loopback: bool,
    #[serde(default)]
    cidr: Option<String>,
}

pub struct IpAddrs6;
impl Function for IpAddrs6 {
    const NAME: &'static str = "network.ip_addrs6";
    const DOC: &'static str = "Returns the host's IPv6 addresses, sorted; ::1 only with \
        include_loopback=True.\n\n\
        interface: only these interfaces (a name, a glob, or a list). cidr: only addresses in this \
        network (2000::/3).\n\n\
        CLI example: brine run '*' network.ip_addrs6 interface=eth0";
    const PARAMS: &'static [Param] = &[opt("interface"), opt("include_loopback"), opt("cidr")];
    type Args = IpAddrs6Args;
    fn call(&self, ctx: &Context, a: IpAddrs6Args) -> Result<Output, CallError> {
        let a = IpAddrsArgs { interface: a.interface, include_loopback: a.include_loopback, cidr: a.cidr, kind: None };
        Ok(Output::ok(ip_addrs(&interfaces(&Host::new(ctx))?, &a, "inet6")?))
    }
}

/// The `network` execution module.
pub static MODULE: super::Module = super::Module {
    name: "network",
    doc: "This host's network interfaces and addresses.",
    functions: &[&Interfaces, &IpAddrs, &IpAddrs6],
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::host::script::Script;

    /// `ip addr show` on a host with a loopback, a down interface, an Ethernet card with a
    /// secondary address and a VLAN.
    const IP_ADDR: &str = "\
1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 qdisc noqueue state UNKNOWN group default qlen 1000
    link/loopback 00:00:00:00:00:00 brd 00:00:00:00:00:00
    inet 127.0.0.1/8 scope host lo
       valid_lft forever preferred_lft forever
    inet6 ::1/128 scope host 
       valid_lft forever preferred_lft forever
2: ifb0: <BROADCAST,NOARP> mtu 1500 qdisc noop state DOWN group default qlen 32
    link/ether ee:da:c0:0a:c9:73 brd ff:ff:ff:ff:ff:ff
4: eth0: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1400 qdisc pfifo_fast state UP group default qlen 1000
    link/ether 02:fc:00:00:00:01 brd ff:ff:ff:ff:ff:ff
    inet 192.0.2.2/24 brd 192.0.2.255 scope global eth0
       valid_lft forever preferred_lft forever
    inet 203.0.113.9/24 brd 203.0.113.255 scope global secondary eth0:1
       valid_lft forever preferred_lft forever
    inet6 fd00::2/64 scope global nodad 
       valid_lft forever preferred_lft forever
    inet6 fe80::fc:ff:fe00:1/64 scope link 
       valid_lft forever preferred_lft forever
5: eth0.100@eth0: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1400 qdisc noqueue state UP group default qlen 1000
    link/ether 02:fc:00:00:00:01 brd ff:ff:ff:ff:ff:ff
    inet 10.1.2.3/16 brd 10.1.255.255 scope global eth0.100
       valid_lft forever preferred_lft forever
";

    fn ifaces() -> Map {
        parse_ip_addr(IP_ADDR)
    }

    #[test]
    fn ip_addr_output_becomes_salts_interfaces() {
        let got = Value::Object(ifaces());
        assert_eq!(
            got["lo"],
            json!({"up": true, "hwaddr": "00:00:00:00:00:00",
                   "inet": [{"address": "127.0.0.1", "netmask": "255.0.0.0", "broadcast": null, "label": "lo"}],
                   "inet6": [{"address": "::1", "prefixlen": "128", "scope": "host"}]})
        );
        assert_eq!(got["ifb0"], json!({"up": false, "hwaddr": "ee:da:c0:0a:c9:73"}));
        assert_eq!(
            got["eth0"]["secondary"],
            json!([{"type": "inet", "address": "203.0.113.9", "netmask": "255.255.255.0",
                    "broadcast": "203.0.113.255", "label": "eth0:1"}])
        );
        assert_eq!(
            got["eth0"]["inet6"][1],
            json!({"address": "fe80::fc:ff:fe00:1", "prefixlen": "64", "scope": "link"})
        );
        assert_eq!(got["eth0.100"]["parent"], json!("eth0"));
        let names: Vec<&String> = got.as_object().unwrap().keys().collect();
        assert_eq!(names, ["lo", "ifb0", "eth0", "eth0.100"], "ip's order");
        let keys: Vec<&String> = got["eth0"].as_object().unwrap().keys().collect();
        assert_eq!(keys, ["up", "hwaddr", "inet", "secondary", "inet6"]);
    }

    #[test]
    fn ip_addrs_filters_like_salt() {
        let ifaces = ifaces();
        let v4 = |a: Value| ip_addrs(&ifaces, &serde_json::from_value(a).unwrap(), "inet").unwrap();
        assert_eq!(v4(json!({})), json!(["10.1.2.3", "192.0.2.2", "203.0.113.9"]));
        assert_eq!(v4(json!({"include_loopback": true, "interface": "lo"})), json!(["127.0.0.1"]));
        assert_eq!(v4(json!({"interface": "eth0*"})), json!(["10.1.2.3", "192.0.2.2", "203.0.113.9"]));
        assert_eq!(v4(json!({"interface": ["eth0.100", "lo"]})), json!(["10.1.2.3"]));
        assert_eq!(v4(json!({"cidr": "192.0.2.0/24"})), json!(["192.0.2.2"]));
        assert_eq!(v4(json!({"type": "private"})), json!(["10.1.2.3", "192.0.2.2", "203.0.113.9"]));
        assert_eq!(v4(json!({"type": "public"})), json!([]));
        let err = ip_addrs(&ifaces, &serde_json::from_value(json!({"cidr": "192.0.2.1/24"})).unwrap(), "inet");
        assert_eq!(err.unwrap_err().to_string(), "Invalid CIDR '192.0.2.1/24': host bits are set");
        let v6 = |a: Value| ip_addrs(&ifaces, &serde_json::from_value(a).unwrap(), "inet6").unwrap();
        assert_eq!(v6(json!({})), json!(["fd00::2", "fe80::fc:ff:fe00:1"]));
        assert_eq!(v6(json!({"include_loopback": true})), json!(["::1", "fd00::2", "fe80::fc:ff:fe00:1"]));
        assert_eq!(v6(json!({"cidr": "fe80::/10"})), json!(["fe80::fc:ff:fe00:1"]));
        assert!(is_private_v4(Ipv4Addr::new(172, 31, 0, 1)) && !is_private_v4(Ipv4Addr::new(8, 8, 8, 8)));
    }

    #[test]
    fn interfaces_runs_ip_addr_show() {
        let script = Script::new().ok("ip addr show", IP_ADDR).fails("ip addr show", 1, "ip: cannot open netlink");
        assert_eq!(interfaces(&script).unwrap().len(), 4);
        let err = interfaces(&script).unwrap_err().to_string();
        assert!(err.contains("cannot open netlink"), "{err}");
        script.done();
    }

    /// Against this host's real interfaces.
    #[test]
    fn real_interfaces_include_loopback() {
        if super::super::host::which("ip").is_none() {
            eprintln!("skipped: no ip command on this host");
            return;
        }
        let ctx = Context::default();
        let got = crate::exec::call("network.interfaces", &ctx, vec![], Map::new()).unwrap().ret;
        assert_eq!(got["lo"]["inet"][0]["address"], json!("127.0.0.1"), "{got}");
        let kw: Map = serde_json::from_value(json!({"include_loopback": true, "interface": "lo"})).unwrap();
        let got = crate::exec::call("network.ip_addrs", &ctx, vec![], kw).unwrap().ret;
        assert_eq!(got, json!(["127.0.0.1"]));
    }
}
