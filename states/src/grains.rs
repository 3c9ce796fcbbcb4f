//! Grains: static facts about the host, collected once at minion start (and on
//! refresh) and cached by the master for targeting.
//!
//! Only facts that change rarely belong here — no uptime, no load. Names and value
//! shapes follow Salt's so existing targets and templates keep working
//! (`os_family:Debian`, `osmajorrelease`, `ipv4`, `mem_total` in MiB). Everything is
//! read from local files: collecting grains never waits on DNS or spawns a program.
//!
//! Grains set with `grains.setval` live in a saved-grains file ([`load_saved`],
//! [`save`]) that the minion lays over the collected grains, under its config's.

mod timezone;

use brine_proto::{Map, Value};
use std::collections::BTreeSet;
use std::fs;
use std::io::{self, Read, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// Collects the grains of this host for the minion `id`, then lays the static
/// `custom` grains from the minion config over them.
pub fn collect(id: &str, custom: &Map) -> Map {
    let mut g = Map::new();
    g.insert("id".into(), id.into());
    host_names(&mut g);
    os_release(&mut g, &read("/etc/os-release"));
    kernel(&mut g);
    let family = g.get("os_family").and_then(Value::as_str).unwrap_or_default();
    let cpuarch = g.get("cpuarch").and_then(Value::as_str).unwrap_or_default();
    let elf = read_head("/usr/bin/dpkg", 64).or_else(|| read_head("/bin/sh", 64)).unwrap_or_default();
    g.insert("osarch".into(), osarch(family, cpuarch, &elf).into());
    cpu(&mut g, &read("/proc/cpuinfo"));
    let meminfo = read("/proc/meminfo");
    g.insert("mem_total".into(), meminfo_mib(&meminfo, "MemTotal").into());
    g.insert("swap_total".into(), meminfo_mib(&meminfo, "SwapTotal").into());
    g.insert("machine_id".into(), read("/etc/machine-id").trim().into());
    addresses(&mut g);
    fqdn_addresses(&mut g, &read("/etc/hosts"));
    g.insert("init".into(), init_system().into());
    let (kind, subtype) = virtual_kind();
    g.insert("virtual".into(), kind.into());
    if let Some(subtype) = subtype {
        g.insert("virtual_subtype".into(), subtype.into());
    }
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let tz = timezone::abbreviation_now();
    g.insert("locale_info".into(), locale_info(env("LC_ALL"), env("LC_CTYPE"), env("LANG"), tz).into());
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

/// The first `n` bytes of a file.
fn read_head(path: &str, n: u64) -> Option<Vec<u8>> {
    let mut head = Vec::new();
    fs::File::open(path).ok()?.take(n).read_to_end(&mut head).ok()?;
    Some(head)
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
    let fullname = if name.is_empty() { os.to_string() } else { name };
    // Salt's osfinger: the os for Debian-likes that name themselves plainly, else the
    // full name; the whole release for Ubuntu (22.04), else its first part.
    let finger_name = if matches!(os, "Debian" | "Raspbian") { os } else { fullname.as_str() };
    let finger_release =
        if matches!(os, "Ubuntu" | "Pop") { release.as_str() } else { release.split('.').next().unwrap_or_default() };
    g.insert("osfinger".into(), format!("{finger_name}-{finger_release}").into());
    g.insert("osfullname".into(), fullname.into());
}

/// The architecture the package manager uses, as Salt's `osarch`: Debian's name
/// (what `dpkg --print-architecture` says) read from the ELF header of dpkg itself,
/// so a 32-bit userland on a 64-bit kernel reports `armhf`, not `arm64`; elsewhere
/// the kernel's machine name, as `rpm --eval %{_host_cpu}` gives it.
fn osarch(family: &str, cpuarch: &str, elf: &[u8]) -> String {
    if family != "Debian" {
        return cpuarch.to_string();
    }
    if let Some(arch) = debian_arch_of_elf(elf) {
        return arch.to_string();
    }
    match cpuarch {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "i386" | "i486" | "i586" | "i686" => "i386",
        "armv7l" | "armv8l" => "armhf",
        "ppc64le" => "ppc64el",
        other => other,
    }
    .to_string()
}

/// Debian's name for the architecture of an ELF executable, from its header.
fn debian_arch_of_elf(h: &[u8]) -> Option<&'static str> {
    if h.len() < 52 || &h[..4] != b"\x7fELF" {
        return None;
    }
    let wide = h[4] == 2;
    let little = h[5] == 1;
    let machine = if little { u16::from_le_bytes([h[18], h[19]]) } else { u16::from_be_bytes([h[18], h[19]]) };
    let at = if wide { 48 } else { 36 };
    let flag_bytes = [h[at], h[at + 1], h[at + 2], h[at + 3]];
    let flags = if little { u32::from_le_bytes(flag_bytes) } else { u32::from_be_bytes(flag_bytes) };
    const EF_ARM_ABI_FLOAT_HARD: u32 = 0x400;
    Some(match (machine, wide) {
        (62, true) => "amd64",
        (62, false) => "x32",
        (3, _) => "i386",
        (183, _) => "arm64",
        (40, _) if flags & EF_ARM_ABI_FLOAT_HARD != 0 => "armhf",
        (40, _) => "armel",
        (21, _) if little => "ppc64el",
        (21, _) => "ppc64",
        (20, _) => "powerpc",
        (22, true) => "s390x",
        (243, true) => "riscv64",
        (258, true) => "loong64",
        (8, true) if little => "mips64el",
        (8, false) if little => "mipsel",
        (43, true) => "sparc64",
        _ => return None,
    })
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

/// A `/proc/meminfo` field (in kB there) in MiB, as Salt reports `mem_total` and
/// `swap_total`; 0 when missing.
fn meminfo_mib(meminfo: &str, key: &str) -> u64 {
    meminfo
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
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

/// `fqdn_ip4` and `fqdn_ip6`: the addresses `/etc/hosts` gives the `fqdn` grain.
/// Salt asks the resolver, which may go on to DNS and hang; brine reads only the
/// hosts file, so a name known only to DNS gets empty lists.
fn fqdn_addresses(g: &mut Map, hosts: &str) {
    let fqdn = g.get("fqdn").and_then(Value::as_str).unwrap_or_default().to_string();
    let (v4, v6) = hosts_addresses(hosts, &fqdn);
    let list = |set: BTreeSet<IpAddr>| Value::Array(set.into_iter().map(|ip| ip.to_string().into()).collect());
    g.insert("fqdn_ip4".into(), list(v4));
    g.insert("fqdn_ip6".into(), list(v6));
}

/// The IPv4 and IPv6 addresses a hosts file lists for `name` (any of a line's names,
/// compared without case).
fn hosts_addresses(hosts: &str, name: &str) -> (BTreeSet<IpAddr>, BTreeSet<IpAddr>) {
    let mut v4 = BTreeSet::new();
    let mut v6 = BTreeSet::new();
    if name.is_empty() {
        return (v4, v6);
    }
    for line in hosts.lines() {
        let mut words = line.split('#').next().unwrap_or_default().split_whitespace();
        let Some(Ok(addr)) = words.next().map(str::parse::<IpAddr>) else { continue };
        if words.any(|w| w.eq_ignore_ascii_case(name)) {
            if addr.is_ipv4() {
                v4.insert(addr);
            } else {
                v6.insert(addr);
            }
        }
    }
    (v4, v6)
}

/// Salt's `locale_info`: the language and encoding Python's `locale.getlocale()` reports
/// for the process's LC_CTYPE, Python's default encoding, and the time zone's current
/// abbreviation.
///
/// Python 3 coerces a C or POSIX LC_CTYPE to `C.UTF-8` unless LC_ALL is set (PEP 538),
/// and its alias table reads `C.UTF-8` as `en_US.UTF-8`: a minion with no locale set
/// reports `en_US`/`UTF-8`, as Salt does. brine does not check that the named locale is
/// installed (Python falls back to `C.UTF-8` when it is not), and a locale without a
/// codeset gets `ISO8859-1` (`ISO8859-15` with `@euro`), the common case of Python's
/// table.
fn locale_info(lc_all: Option<String>, lc_ctype: Option<String>, lang: Option<String>, tz: Option<String>) -> Map {
    let forced = lc_all.is_some();
    let name = lc_all.or(lc_ctype).or(lang).unwrap_or_else(|| "C".into());
    let name = if !forced && matches!(name.as_str(), "C" | "POSIX") { "C.UTF-8".to_string() } else { name };
    let (language, encoding): (Value, Value) = match name.as_str() {
        "C" | "POSIX" => (Value::Null, Value::Null),
        _ => {
            let (base, modifier) = name.split_once('@').map_or((name.as_str(), ""), |(b, m)| (b, m));
            let (language, codeset) = base.split_once('.').map_or((base, None), |(l, c)| (l, Some(c)));
            let language = if language == "C" { "en_US" } else { language };
            let encoding = match codeset {
                Some(c) => normalize_codeset(c),
                None if modifier == "euro" => "ISO8859-15".into(),
                None => "ISO8859-1".into(),
            };
            (language.into(), encoding.into())
        }
    };
    let mut m = Map::new();
    m.insert("defaultlanguage".into(), language);
    m.insert("defaultencoding".into(), encoding);
    // Salt reports Python's `sys.getdefaultencoding()`, which is always utf-8.
    m.insert("detectedencoding".into(), "utf-8".into());
    m.insert("timezone".into(), tz.unwrap_or_else(|| "unknown".into()).into());
    m
}

/// A codeset as Python's locale alias table spells it: `utf8` → `UTF-8`,
/// `iso-8859-15` → `ISO8859-15`, `eucjp` → `eucJP`; others as given.
fn normalize_codeset(codeset: &str) -> String {
    let squashed: String = codeset.chars().filter(|c| !matches!(c, '-' | '_')).collect::<String>().to_lowercase();
    if squashed == "utf8" {
        "UTF-8".into()
    } else if let Some(part) = squashed.strip_prefix("iso8859") {
        format!("ISO8859-{part}")
    } else if let Some(region) = squashed.strip_prefix("euc") {
        format!("euc{}", region.to_uppercase())
    } else {
        codeset.to_string()
    }
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

/// The `virtual` grain, and `virtual_subtype` for the containers Salt names.
fn virtual_kind() -> (&'static str, Option<&'static str>) {
    let marker = read("/run/systemd/container");
    let environ = read("/proc/1/environ");
    let variable = environ.split('\0').find_map(|kv| kv.strip_prefix("container=")).unwrap_or_default();
    let engine = if marker.trim().is_empty() { variable } else { marker.trim() };
    let subtype = container_subtype(
        Path::new("/.dockerenv").exists(),
        Path::new("/run/.containerenv").exists(),
        &read("/proc/1/cgroup"),
        engine,
    );
    if subtype.is_some() {
        return ("container", subtype);
    }
    (machine_kind(), None)
}

/// Which container engine runs this host, from the files engines leave: Docker's
/// `/.dockerenv`, Podman's `/run/.containerenv`, PID 1's cgroup paths, and the
/// `container=` name systemd and LXC pass to PID 1.
fn container_subtype(dockerenv: bool, containerenv: bool, cgroup: &str, engine: &str) -> Option<&'static str> {
    if dockerenv {
        Some("Docker")
    } else if containerenv {
        Some("Podman")
    } else if cgroup.contains(":/lxc/") || engine.starts_with("lxc") {
        Some("LXC")
    } else if cgroup.contains("kubepods") {
        Some("kubernetes")
    } else if cgroup.contains("libpod_parent") {
        Some("libpod")
    } else if cgroup.contains("docker") || engine == "docker" {
        Some("Docker")
    } else if cgroup.contains("lxc") {
        Some("LXC")
    } else if engine == "podman" {
        Some("Podman")
    } else {
        None
    }
}

fn machine_kind() -> &'static str {
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

/// Why the saved-grains file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum SavedGrainsError {
    /// The file exists but could not be read.
    #[error("cannot read the grains file {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    /// The file is not YAML, or not a map of grain names to values.
    #[error("the grains file {path} is not a YAML map of grains: {reason}")]
    Parse { path: PathBuf, reason: String },
    /// The new contents could not be written.
    #[error("cannot write the grains file {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
}

/// Reads the grains saved by `grains.setval` (a YAML map, like Salt's
/// `/etc/salt/grains`). A missing or empty file holds no grains.
pub fn load_saved(path: &Path) -> Result<Map, SavedGrainsError> {
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Map::new()),
        Err(source) => return Err(SavedGrainsError::Read { path: path.into(), source }),
    };
    if text.trim().is_empty() {
        return Ok(Map::new());
    }
    let parse = |reason: String| SavedGrainsError::Parse { path: path.into(), reason };
    match serde_saphyr::from_str::<Value>(&text).map_err(|e| parse(e.to_string()))? {
        Value::Object(m) => Ok(m),
        Value::Null => Ok(Map::new()),
        other => Err(parse(format!("found {other} at the top"))),
    }
}

/// Replaces the saved grains with `grains`, keys sorted as Salt writes them. The new
/// file is written next to the old one and renamed over it, so a crash leaves one or
/// the other, never half of each.
pub fn save(path: &Path, grains: &Map) -> Result<(), SavedGrainsError> {
    let write_err = |source| SavedGrainsError::Write { path: path.into(), source };
    let mut sorted = grains.clone();
    sorted.sort_keys();
    let text = if sorted.is_empty() {
        "{}\n".to_string()
    } else {
        serde_saphyr::to_string(&Value::Object(sorted)).map_err(|e| write_err(io::Error::other(e.to_string())))?
    };
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
    let written = fs::File::create(&tmp).and_then(|mut f| {
        f.write_all(text.as_bytes())?;
        f.sync_all()
    });
    if let Err(e) = written.and_then(|()| fs::rename(&tmp, path)) {
        let _ = fs::remove_file(&tmp);
        return Err(write_err(e));
    }
    Ok(())
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
    fn memory_and_swap_are_reported_in_mib() {
        let meminfo = "MemTotal:       16384000 kB\nMemFree: 1 kB\nSwapCached: 0 kB\nSwapTotal:  2097148 kB\n";
        assert_eq!(meminfo_mib(meminfo, "MemTotal"), 16000);
        assert_eq!(meminfo_mib(meminfo, "SwapTotal"), 2047, "floor, as Salt divides");
        assert_eq!(meminfo_mib("garbage", "MemTotal"), 0);
    }

    #[test]
    fn osfinger_follows_salts_naming() {
        let finger = |text: &str| {
            let mut g = Map::new();
            os_release(&mut g, text);
            g["osfinger"].clone()
        };
        let debian =
            "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nID=debian\n";
        assert_eq!(finger(debian), json!("Debian-12"));
        assert_eq!(finger("NAME=\"Ubuntu\"\nID=ubuntu\nVERSION_ID=\"22.04\"\n"), json!("Ubuntu-22.04"));
        assert_eq!(finger("NAME=\"Rocky Linux\"\nID=\"rocky\"\nVERSION_ID=\"9.3\"\n"), json!("Rocky Linux-9"));
        assert_eq!(finger("NAME=\"CentOS Stream\"\nID=\"centos\"\nVERSION_ID=\"9\"\n"), json!("CentOS Stream-9"));
    }

    /// An ELF header: class, byte order, machine and flags.
    fn elf(wide: bool, little: bool, machine: u16, flags: u32) -> Vec<u8> {
        let mut h = vec![0u8; 64];
        h[..4].copy_from_slice(b"\x7fELF");
        h[4] = if wide { 2 } else { 1 };
        h[5] = if little { 1 } else { 2 };
        let m = if little { machine.to_le_bytes() } else { machine.to_be_bytes() };
        h[18..20].copy_from_slice(&m);
        let at = if wide { 48 } else { 36 };
        let f = if little { flags.to_le_bytes() } else { flags.to_be_bytes() };
        h[at..at + 4].copy_from_slice(&f);
        h
    }

    #[test]
    fn osarch_is_the_package_managers_architecture() {
        assert_eq!(osarch("Debian", "x86_64", &elf(true, true, 62, 0)), "amd64");
        // A 32-bit hard-float userland on a 64-bit kernel, as on many Raspberry Pis.
        assert_eq!(osarch("Debian", "aarch64", &elf(false, true, 40, 0x0500_0400)), "armhf");
        assert_eq!(osarch("Debian", "armv7l", &elf(false, true, 40, 0x0500_0000)), "armel");
        assert_eq!(osarch("Debian", "ppc64le", &elf(true, true, 21, 0)), "ppc64el");
        assert_eq!(osarch("Debian", "s390x", &elf(true, false, 22, 0)), "s390x");
        assert_eq!(osarch("Debian", "x86_64", b"#!/bin/sh"), "amd64", "no ELF: from the kernel's name");
        assert_eq!(osarch("Debian", "aarch64", &[]), "arm64");
        assert_eq!(osarch("RedHat", "x86_64", &elf(true, true, 62, 0)), "x86_64");
        assert_eq!(osarch("Alpine", "aarch64", &[]), "aarch64");
        // This host's own shell agrees with its kernel (no multiarch userland here).
        if let (Some(sh), Ok(u)) = (read_head("/bin/sh", 64), nix::sys::utsname::uname()) {
            let machine = u.machine().to_string_lossy().into_owned();
            assert_eq!(osarch("Debian", &machine, &sh), osarch("Debian", &machine, &[]));
        }
    }

    #[test]
    fn fqdn_addresses_come_from_the_hosts_file() {
        let hosts = "127.0.0.1 localhost\n# 10.0.0.9 web1.example.com\n10.0.0.5 web1.example.com web1 # main\n\
                     10.0.0.6 WEB1.example.com\nfe80::1 web1.example.com\nbad web1.example.com\n";
        let (v4, v6) = hosts_addresses(hosts, "web1.example.com");
        let text = |s: BTreeSet<IpAddr>| s.into_iter().map(|ip| ip.to_string()).collect::<Vec<_>>();
        assert_eq!(text(v4), ["10.0.0.5", "10.0.0.6"]);
        assert_eq!(text(v6), ["fe80::1"]);
        let (v4, v6) = hosts_addresses(hosts, "db1");
        assert!(v4.is_empty() && v6.is_empty());
        let mut g = Map::new();
        g.insert("fqdn".into(), json!("web1"));
        fqdn_addresses(&mut g, hosts);
        assert_eq!((g["fqdn_ip4"].clone(), g["fqdn_ip6"].clone()), (json!(["10.0.0.5"]), json!([])));
    }

    #[test]
    fn locale_info_reads_the_locale_as_python_does() {
        let info = |all: Option<&str>, ctype: Option<&str>, lang: Option<&str>| {
            let s = |v: Option<&str>| v.map(String::from);
            let m = locale_info(s(all), s(ctype), s(lang), Some("CET".into()));
            (m["defaultlanguage"].clone(), m["defaultencoding"].clone())
        };
        // Captured from Python 3.11 (Salt 3007.8's) locale.getlocale().
        let en_utf8 = (json!("en_US"), json!("UTF-8"));
        assert_eq!(info(None, None, None), en_utf8);
        assert_eq!(info(None, None, Some("C")), en_utf8);
        assert_eq!(info(None, None, Some("POSIX")), en_utf8);
        assert_eq!(info(None, None, Some("C.UTF-8")), en_utf8);
        assert_eq!(info(None, None, Some("C.utf8")), en_utf8);
        assert_eq!(info(None, None, Some("en_US.utf8")), en_utf8);
        assert_eq!(info(None, Some("de_DE.UTF-8"), Some("C.UTF-8")), (json!("de_DE"), json!("UTF-8")));
        assert_eq!(info(Some("C"), None, Some("de_DE.UTF-8")), (json!(null), json!(null)));
        assert_eq!(info(None, None, Some("de_DE.ISO-8859-1")), (json!("de_DE"), json!("ISO8859-1")));
        assert_eq!(info(None, None, Some("de_DE.iso885915@euro")), (json!("de_DE"), json!("ISO8859-15")));
        assert_eq!(info(None, None, Some("fr_FR@euro")), (json!("fr_FR"), json!("ISO8859-15")));
        assert_eq!(info(None, None, Some("de_DE")), (json!("de_DE"), json!("ISO8859-1")));
        assert_eq!(info(None, None, Some("ja_JP.eucJP")), (json!("ja_JP"), json!("eucJP")));
        assert_eq!(info(None, None, Some("en_US.UTF-8@foo")), en_utf8);
        let m = locale_info(None, None, None, None);
        assert_eq!(
            Value::Object(m),
            json!({"defaultlanguage": "en_US", "defaultencoding": "UTF-8", "detectedencoding": "utf-8", "timezone": "unknown"})
        );
    }

    #[test]
    fn container_engines_are_named_like_salt() {
        assert_eq!(container_subtype(true, false, "", ""), Some("Docker"));
        assert_eq!(container_subtype(false, true, "", ""), Some("Podman"));
        assert_eq!(container_subtype(false, false, "12:pids:/lxc/c1\n", ""), Some("LXC"));
        assert_eq!(container_subtype(false, false, "0::/\n", "lxc"), Some("LXC"));
        assert_eq!(container_subtype(false, false, "1:cpu:/kubepods/besteffort/x\n", ""), Some("kubernetes"));
        assert_eq!(container_subtype(false, false, "1:cpu:/libpod_parent/x\n", ""), Some("libpod"));
        assert_eq!(container_subtype(false, false, "1:cpu:/docker/abc\n", ""), Some("Docker"));
        assert_eq!(container_subtype(false, false, "0::/\n", "podman"), Some("Podman"));
        assert_eq!(container_subtype(false, false, "0::/init.scope\n", ""), None);
        assert_eq!(container_subtype(false, false, "0::/\n", "systemd-nspawn"), None);
    }

    #[test]
    fn saved_grains_round_trip_through_yaml() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("grains");
        assert_eq!(load_saved(&path).unwrap(), Map::new(), "no file yet");
        let grains: Map =
            serde_json::from_value(json!({"roles": ["web", "db"], "n": 5, "d": {"a": null, "b": "x y"}})).unwrap();
        save(&path, &grains).unwrap();
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("d:"), "keys sorted like Salt writes them:\n{text}");
        assert_eq!(load_saved(&path).unwrap(), grains);
        save(&path, &Map::new()).unwrap();
        assert_eq!(load_saved(&path).unwrap(), Map::new());
        // Salt writes this shape; a hand-written file reads too.
        fs::write(&path, "roles:\n- web\nnum: 5\n").unwrap();
        assert_eq!(Value::Object(load_saved(&path).unwrap()), json!({"roles": ["web"], "num": 5}));
        fs::write(&path, "").unwrap();
        assert_eq!(load_saved(&path).unwrap(), Map::new());
        fs::write(&path, "- a\n- b\n").unwrap();
        let err = load_saved(&path).unwrap_err().to_string();
        assert!(err.contains("is not a YAML map of grains") && err.contains(path.to_str().unwrap()), "{err}");
        fs::write(&path, "a: [\n").unwrap();
        assert!(load_saved(&path).is_err());
        let err = save(&dir.path().join("missing/grains"), &grains).unwrap_err().to_string();
        assert!(err.starts_with("cannot write the grains file"), "{err}");
        let leftovers: Vec<_> =
            fs::read_dir(dir.path()).unwrap().filter_map(Result::ok).map(|e| e.file_name()).collect();
        assert_eq!(leftovers, ["grains"], "no temp files left");
    }

    #[test]
    fn collect_has_the_core_grains_and_custom_ones_win() {
        let mut custom = Map::new();
        custom.insert("roles".into(), json!(["web", "db"]));
        custom.insert("os".into(), json!("Custom"));
        let g = collect("m1", &custom);
        for key in [
            "id",
            "host",
            "fqdn",
            "os",
            "os_family",
            "osfinger",
            "osarch",
            "kernel",
            "cpuarch",
            "num_cpus",
            "mem_total",
            "swap_total",
            "ipv4",
            "fqdn_ip4",
            "fqdn_ip6",
            "locale_info",
        ] {
            assert!(g.contains_key(key), "missing grain {key}");
        }
        assert_eq!(g["id"], json!("m1"));
        assert_eq!(g["os"], json!("Custom"));
        assert_eq!(get_path(&g, "roles:1"), Some(&json!("db")));
        assert!(g["ipv4"].as_array().unwrap().contains(&json!("127.0.0.1")));
        let locale: Vec<&String> = g["locale_info"].as_object().unwrap().keys().collect();
        assert_eq!(locale, ["defaultlanguage", "defaultencoding", "detectedencoding", "timezone"]);
        assert_ne!(g["locale_info"]["timezone"], json!("unknown"));
    }
}
