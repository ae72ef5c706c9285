//! Shaped links made here, for the tests of thin and cut links: a server namespace, and one
//! client namespace per link joined to it by a veth pair with addresses of our own. Each link
//! has a rate out of each end (`tc tbf`), random loss on what arrives at each end (nftables at
//! the input hook), and can be cut (a drop-all rule at both ends). Everything — namespaces and
//! the processes left in them — goes when the `Net` is dropped.
//!
//! Needs root (network namespaces): scripts/test runs as root, as CI does.

use std::process::Command;

pub fn sh(args: &[&str]) {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(out.status.success(), "{}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
}

pub fn in_ns(ns: &str, args: &[&str]) {
    let mut all = vec!["ip", "netns", "exec", ns];
    all.extend_from_slice(args);
    sh(&all);
}

/// Turns IPv6 off in namespace `ns`, for the devices it has and those moved in later. The
/// links are IPv4 only, and a veth's IPv6 link-local address, announced about 1.2 s after the
/// link comes up (its duplicate check done), is to a Chromium started meanwhile a network
/// change: it aborts every request in flight with `ERR_NETWORK_CHANGED` (seen as a first page
/// with no sign-in form).
fn ipv4_only(ns: &str) {
    let knob = |conf: &str| format!("echo 1 > /proc/sys/net/ipv6/conf/{conf}/disable_ipv6");
    in_ns(ns, &["sh", "-c", &format!("{}; {}", knob("all"), knob("default"))]);
}

/// One link from the server namespace to a client namespace.
pub struct ClientLink {
    pub ns: String,
    pub dev: String,
    pub server_dev: String,
    /// The server's address on this link (what the client reaches it at).
    pub server_ip: String,
}

pub struct Net {
    pub server_ns: String,
    tag: String,
    octet: u32,
    pub links: Vec<ClientLink>,
}

impl Net {
    pub fn new() -> Net {
        let tag = crate::support::rand_suffix()[..5].to_string();
        // A /24 of our own in our own namespaces; the octet varies so parallel runs never meet.
        let octet: u32 = tag.bytes().map(u32::from).sum::<u32>() % 250 + 1;
        let server_ns = format!("fysrv{tag}");
        sh(&["ip", "netns", "add", &server_ns]);
        ipv4_only(&server_ns);
        in_ns(&server_ns, &["ip", "link", "set", "lo", "up"]);
        nft_table(&server_ns);
        Net { server_ns, tag, octet, links: vec![] }
    }

    /// A new client namespace joined to the server's, at `rate` (tc's notation: `1mbit`,
    /// `300kbit`) out of each end and `loss_pct` % random loss into each end; its index.
    pub fn add_client(&mut self, rate: &str, loss_pct: u32) -> usize {
        let i = self.links.len();
        let ns = format!("fycli{}{i}", self.tag);
        let (server_dev, dev) = (format!("fys{}{i}", self.tag), format!("fyc{}{i}", self.tag));
        let base = 4 * i as u32;
        let (server_ip, ip) = (
            format!("10.213.{}.{}", self.octet, base + 1),
            format!("10.213.{}.{}", self.octet, base + 2),
        );
        sh(&["ip", "netns", "add", &ns]);
        ipv4_only(&ns);
        sh(&["ip", "link", "add", &server_dev, "type", "veth", "peer", "name", &dev]);
        sh(&["ip", "link", "set", &server_dev, "netns", &self.server_ns]);
        sh(&["ip", "link", "set", &dev, "netns", &ns]);
        in_ns(&ns, &["ip", "link", "set", "lo", "up"]);
        nft_table(&ns);
        for (n, d, a) in [(&self.server_ns, &server_dev, &server_ip), (&ns, &dev, &ip)] {
            in_ns(n, &["ip", "addr", "add", &format!("{a}/30"), "dev", d]);
            in_ns(n, &["ip", "link", "set", d, "up"]);
            in_ns(
                n,
                &[
                    "tc", "qdisc", "add", "dev", d, "root", "tbf", "rate", rate, "burst", "32kbit",
                    "latency", "400ms",
                ],
            );
            if loss_pct > 0 {
                in_ns(
                    n,
                    &[
                        "nft",
                        "add",
                        "rule",
                        "inet",
                        "island",
                        "inp",
                        "iifname",
                        d,
                        "numgen",
                        "random",
                        "mod",
                        "100",
                        "<",
                        &loss_pct.to_string(),
                        "drop",
                    ],
                );
            }
        }
        self.links.push(ClientLink { ns, dev, server_dev, server_ip });
        i
    }

    /// Cuts link `i` (every packet dropped at both ends) or restores it.
    pub fn cut(&self, i: usize, down: bool) {
        let l = &self.links[i];
        let mark = format!("\"cut {}\"", l.dev);
        for (ns, dev) in [(&self.server_ns, &l.server_dev), (&l.ns, &l.dev)] {
            if down {
                in_ns(
                    ns,
                    &[
                        "nft", "insert", "rule", "inet", "island", "inp", "iifname", dev, "drop",
                        "comment", &mark,
                    ],
                );
            } else {
                let out = Command::new("ip")
                    .args([
                        "netns", "exec", ns, "nft", "-a", "list", "chain", "inet", "island", "inp",
                    ])
                    .output()
                    .unwrap();
                let text = String::from_utf8_lossy(&out.stdout).to_string();
                for line in text.lines().filter(|x| x.contains(&mark)) {
                    let handle = line.rsplit("handle ").next().unwrap().trim();
                    in_ns(
                        ns,
                        &["nft", "delete", "rule", "inet", "island", "inp", "handle", handle],
                    );
                }
            }
        }
    }

    /// Bytes the client end of link `i` has put on the wire.
    pub fn client_tx_bytes(&self, i: usize) -> u64 {
        let l = &self.links[i];
        let out = Command::new("ip")
            .args(["netns", "exec", &l.ns, "cat"])
            .arg(format!("/sys/class/net/{}/statistics/tx_bytes", l.dev))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
    }
}

/// The table and input chain that loss and cut rules go into.
fn nft_table(ns: &str) {
    in_ns(ns, &["nft", "add", "table", "inet", "island"]);
    in_ns(
        ns,
        &[
            "nft",
            "add",
            "chain",
            "inet",
            "island",
            "inp",
            "{ type filter hook input priority 0 ; }",
        ],
    );
}

impl Drop for Net {
    /// Every process left in the namespaces ends with them, even when a test panicked before
    /// stopping its server: a server left running broke the next island test.
    fn drop(&mut self) {
        let all =
            std::iter::once(self.server_ns.clone()).chain(self.links.iter().map(|l| l.ns.clone()));
        for ns in all {
            if let Ok(out) = Command::new("ip").args(["netns", "pids", &ns]).output() {
                for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                    let _ = Command::new("kill").args(["-KILL", pid]).status();
                }
            }
            let _ = Command::new("ip").args(["netns", "del", &ns]).status();
        }
    }
}
