//! Grains: static facts about the host, collected once at minion start (and on
//! refresh) and cached by the master for targeting.
//!
//! Only facts that change rarely belong here — no uptime, no load. Names and value
//! shapes follow Salt's so existing targets and templates keep working
//! (`os_family:Debian`, `osmajorrelease`, `ipv4`, `mem_total` in MiB).

use brine_proto::{Map, Value};
use std::collections::BTreeSet;
use std::fs;
use std::net::IpAddr;

/// Collects the grains of this host for the minion `id`, then lays the static
/// `custom` grains from the minion config over them.
pub fn collect(id: &str, custom: &Map) -> Map {
    let mut g = Map::new();
    g.insert("id".into(), id.into());
    host_names(&mut g);
    os_release(&mut g, &read("/etc/os-release"));
    kernel(&mut g);
    cpu(&mut g, &read("/proc/cpuinfo"));
    g.insert("mem_total".into(), mem_total_mib(&read("/proc/meminfo")).into());
    g.insert("machine_id".into(), read("/etc/machine-id").trim().into());
    addresses(&mut g);
    g.insert("init".into(), init_system().into());
    g.insert("virtual".into(), virtual_kind().into());
    g.insert("shell".into(), if std::path::Path::new("/bin/bash").exists() { "/bin/bash" } else { "/bin/sh" }.into());
    g.insert("brineversion".into(), brine_proto::VERSION.into());
    for (k, v) in custom {
        g.insert(k.clone(), v.clone());
    }
    g
}

fn read(path: &str) -> String {
    fs::read_to_string(path).unwrap_or_default()
}

fn host_names(g: &mut Map) {
    let node = nix::sys::utsname::uname().map(|u| u.nodename().to_string_lossy().into_owned()).unwrap_or_default();
    let host = node.split('.').next().unwrap_or_default().to_string();
    // The FQDN is the node name if it is dotted, else the first dotted alias of this
    // host in /etc/hosts, else the plain host name.
    let fqdn = if node.contains('.') {
        node.clone()
    } else {
        read("/etc/hosts")
            .lines()
            .map(|l| l.split('#').next().unwrap_or_default())
            .filter_map(|l| {
                let names: Vec<&str> = l.split_whitespace().skip(1).collect();
                names
                    .contains(&host.as_str())
                    .then(|| names.into_iter().find(|n| n.contains('.') && n.starts_with(&host)))
            })
            .flatten()
            .next()
            .map(str::to_string)
            .unwrap_or_else(|| node.clone())
    };
    let domain = fqdn.split_once('.').map(|(_, d)| d.to_string()).unwrap_or_default();
    g.insert("host".into(), host.into());
    g.insert("nodename".into(), node.into());
    g.insert("fqdn".into(), fqdn.into());
    g.insert("domain".into(), domain.into());
}

/// Parses `/etc/os-release` into os, os_family, osrelease, osmajorrelease,
/// osrelease_info, oscodename, osfullname.
fn os_release(g: &mut Map, text: &str) {
    let field = |key: &str| -> String {
        text.lines()
            .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
            .map(|v| v.trim().trim_matches('"').trim_matches('\'').to_string())
            .unwrap_or_default()
    };
    let id = field("ID");
    let like = field("ID_LIKE");
    let os = match id.as_str() {
        "debian" => "Debian",
        "ubuntu" => "Ubuntu",
        "linuxmint" => "Mint",
        "raspbian" => "Raspbian",
        "centos" => "CentOS",
        "rhel" => "RedHat",
        "fedora" => "Fedora",
        "rocky" => "Rocky",
        "almalinux" => "AlmaLinux",
        "ol" => "OEL",
        "amzn" => "Amazon",
        "alpine" => "Alpine",
        "arch" => "Arch",
        "gentoo" => "Gentoo",
        "opensuse-leap" | "opensuse" => "Leap",
        "opensuse-tumbleweed" => "openSUSE Tumbleweed",
        "sles" => "SUSE",
        "" => "Unknown",
        other => other,
    };
    let family_of = |word: &str| match word {
        "debian" | "ubuntu" | "linuxmint" | "raspbian" => Some("Debian"),
        "rhel" | "centos" | "fedora" | "rocky" | "almalinux" | "ol" | "amzn" => Some("RedHat"),
        "suse" | "sles" | "opensuse" | "opensuse-leap" | "opensuse-tumbleweed" => Some("Suse"),
        "alpine" => Some("Alpine"),
        "arch" => Some("Arch"),
        "gentoo" => Some("Gentoo"),
        _ => None,
    };
    let family = family_of(&id)
        .or_else(|| like.split_whitespace().find_map(family_of))
        .map(str::to_string)
        .unwrap_or_else(|| os.to_string());
    // Salt reports os-release's VERSION_ID as is (Debian 12 is "12", not "12.11").
    let release = field("VERSION_ID");
    let info: Vec<Value> = release.split('.').filter_map(|p| p.parse::<u64>().ok().map(Value::from)).collect();
    g.insert("os".into(), os.into());
    g.insert("os_family".into(), family.into());
    g.insert("osrelease".into(), release.clone().into());
    g.insert("osrelease_info".into(), Value::Array(info.clone()));
    if let Some(major) = info.first() {
        g.insert("osmajorrelease".into(), major.clone());
    }
    g.insert("oscodename".into(), field("VERSION_CODENAME").into());
    let name = field("NAME");
    g.insert("osfullname".into(), if name.is_empty() { os.to_string() } else { name }.into());
}

fn kernel(g: &mut Map) {
    if let Ok(u) = nix::sys::utsname::uname() {
        g.insert("kernel".into(), u.sysname().to_string_lossy().into_owned().into());
        g.insert("kernelrelease".into(), u.release().to_string_lossy().into_owned().into());
        g.insert("kernelversion".into(), u.version().to_string_lossy().into_owned().into());
        g.insert("cpuarch".into(), u.machine().to_string_lossy().into_owned().into());
    }
}

fn cpu(g: &mut Map, cpuinfo: &str) {
    let num = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    g.insert("num_cpus".into(), num.into());
    let model = cpuinfo
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            matches!(k.trim(), "model name" | "Model" | "cpu model").then(|| v.trim().to_string())
        })
        .unwrap_or_default();
    g.insert("cpu_model".into(), model.into());
}

fn mem_total_mib(meminfo: &str) -> u64 {
    meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0, |kib| kib / 1024)
}

fn addresses(g: &mut Map) {
    let mut v4 = BTreeSet::new();
    let mut v6 = BTreeSet::new();
    let mut hw = Map::new();
    if let Ok(addrs) = nix::ifaddrs::getifaddrs() {
        for a in addrs {
            let Some(addr) = a.address else { continue };
            if let Some(sin) = addr.as_sockaddr_in() {
                v4.insert(IpAddr::V4(sin.ip()));
            } else if let Some(sin6) = addr.as_sockaddr_in6() {
                v6.insert(IpAddr::V6(sin6.ip()));
            } else if let Some(link) = addr.as_link_addr() {
                if let Some(mac) = link.addr() {
                    let s = mac.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":");
                    hw.insert(a.interface_name.clone(), s.into());
                }
            }
        }
    }
    let list = |set: BTreeSet<IpAddr>| Value::Array(set.into_iter().map(|ip| ip.to_string().into()).collect());
    g.insert("ipv4".into(), list(v4));
    g.insert("ipv6".into(), list(v6));
    g.insert("hwaddr_interfaces".into(), Value::Object(hw));
}

fn init_system() -> &'static str {
    if std::path::Path::new("/run/systemd/system").is_dir() {
        "systemd"
    } else {
        let comm = read("/proc/1/comm");
        match comm.trim() {
            "systemd" => "systemd",
            "init" if std::path::Path::new("/sbin/openrc").exists() => "openrc",
            "init" => "sysvinit",
            "runit" | "runsvdir" => "runit",
            _ => "unknown",
        }
    }
}

fn virtual_kind() -> &'static str {
    if std::path::Path::new("/.dockerenv").exists() {
        return "container";
    }
    let cgroup = read("/proc/1/cgroup");
    if cgroup.contains("docker") || cgroup.contains("lxc") || cgroup.contains("kubepods") {
        return "container";
    }
    let product = read("/sys/class/dmi/id/product_name").to_lowercase();
    let vendor = read("/sys/class/dmi/id/sys_vendor").to_lowercase();
    let cpuinfo = read("/proc/cpuinfo");
    if product.contains("kvm") || vendor.contains("qemu") || product.contains("standard pc") {
        "kvm"
    } else if product.contains("vmware") || vendor.contains("vmware") {
        "VMware"
    } else if product.contains("virtualbox") {
        "VirtualBox"
    } else if vendor.contains("xen") {
        "xen"
    } else if vendor.contains("microsoft") {
        "VirtualPC"
    } else if vendor.contains("amazon") || vendor.contains("google") {
        "kvm"
    } else if cpuinfo.contains(" hypervisor") {
        "virtual"
    } else {
        "physical"
    }
}

/// Looks up a `:`-separated path (`os`, `ip_interfaces:eth0`, `roles:0`) in grains.
pub fn get_path<'a>(grains: &'a Map, path: &str) -> Option<&'a Value> {
    let mut parts = path.split(':');
    let mut cur = grains.get(parts.next()?)?;
    for part in parts {
        cur = match cur {
            Value::Object(m) => m.get(part)?,
            Value::Array(a) => a.get(part.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(cur)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn os_release_maps_to_salt_names() {
        let mut g = Map::new();
        os_release(
            &mut g,
            "NAME=\"Ubuntu\"\nID=ubuntu\nID_LIKE=debian\nVERSION_ID=\"22.04\"\nVERSION_CODENAME=jammy\n",
        );
        assert_eq!(g["os"], json!("Ubuntu"));
        assert_eq!(g["os_family"], json!("Debian"));
        assert_eq!(g["osrelease"], json!("22.04"));
        assert_eq!(g["osrelease_info"], json!([22, 4]));
        assert_eq!(g["osmajorrelease"], json!(22));
        assert_eq!(g["oscodename"], json!("jammy"));
        let mut g = Map::new();
        os_release(&mut g, "ID=\"rocky\"\nID_LIKE=\"rhel centos fedora\"\nVERSION_ID=\"9.3\"\n");
        assert_eq!((g["os"].clone(), g["os_family"].clone()), (json!("Rocky"), json!("RedHat")));
        let mut g = Map::new();
        os_release(&mut g, "ID=novel\nID_LIKE=arch\n");
        assert_eq!((g["os"].clone(), g["os_family"].clone()), (json!("novel"), json!("Arch")));
    }

    #[test]
    fn memory_is_reported_in_mib() {
        assert_eq!(mem_total_mib("MemTotal:       16384000 kB\nMemFree: 1 kB\n"), 16000);
        assert_eq!(mem_total_mib("garbage"), 0);
    }

    #[test]
    fn collect_has_the_core_grains_and_custom_ones_win() {
        let mut custom = Map::new();
        custom.insert("roles".into(), json!(["web", "db"]));
        custom.insert("os".into(), json!("Custom"));
        let g = collect("m1", &custom);
        for key in ["id", "host", "fqdn", "os", "os_family", "kernel", "cpuarch", "num_cpus", "mem_total", "ipv4"] {
            assert!(g.contains_key(key), "missing grain {key}");
        }
        assert_eq!(g["id"], json!("m1"));
        assert_eq!(g["os"], json!("Custom"));
        assert_eq!(get_path(&g, "roles:1"), Some(&json!("db")));
        assert!(g["ipv4"].as_array().unwrap().contains(&json!("127.0.0.1")));
    }
}
