//! `--iflist`: this host's interfaces and routes, printed as Nmap prints them (its two
//! starred tables), after the "Starting" line; the run then ends.

use portolan_engine::io::iflist::{self, IfRow, RouteRow};
use portolan_report::normal;

/// The whole text `--iflist` prints, as of `start` (epoch seconds).
pub fn text(start: i64) -> anyhow::Result<String> {
    let (ifaces, routes) = iflist::read()?;
    let mut out = normal::starting_line(&portolan_model::ScanRun::new("", start));
    out.push_str(&render(&ifaces, &routes));
    Ok(out)
}

/// The two tables (Nmap's `print_iflist`).
pub fn render(ifaces: &[IfRow], routes: &[RouteRow]) -> String {
    let mut out = String::new();
    if ifaces.is_empty() {
        out.push_str("INTERFACES: NONE FOUND(!)\n");
    } else {
        let mut rows = vec![cells(&[
            "DEV", "(SHORT)", "IP/MASK", "TYPE", "UP", "MTU", "MAC",
        ])];
        for i in ifaces {
            rows.push(vec![
                i.name.clone(),
                format!("({})", i.name),
                i.addr
                    .map_or("(none)/0".into(), |(a, p)| format!("{a}/{p}")),
                i.kind.as_str().into(),
                if i.up { "up" } else { "down" }.into(),
                i.mtu.to_string(),
                i.mac
                    .map_or(String::new(), |m| m.to_string().to_ascii_uppercase()),
            ]);
        }
        out.push_str("************************INTERFACES************************\n");
        out.push_str(&normal::table(&rows));
        out.push('\n');
    }
    if routes.is_empty() {
        out.push_str("ROUTES: NONE FOUND(!)\n");
    } else {
        let mut rows = vec![cells(&["DST/MASK", "DEV", "METRIC", "GATEWAY"])];
        for r in routes {
            rows.push(vec![
                format!("{}/{}", r.dest, r.prefix),
                r.dev.clone(),
                r.metric.to_string(),
                r.gateway.map_or(String::new(), |g| g.to_string()),
            ]);
        }
        out.push_str("**************************ROUTES**************************\n");
        out.push_str(&normal::table(&rows));
        out.push('\n');
    }
    out
}

fn cells(words: &[&str]) -> Vec<String> {
    words.iter().map(|w| w.to_string()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use portolan_engine::io::iflist::IfKind;
    use portolan_wire::ethernet::MacAddr;

    #[test]
    fn tables_as_nmap_prints_them() {
        let row = |name: &str, addr: Option<&str>, kind, up, mtu, mac: Option<MacAddr>| IfRow {
            name: name.into(),
            addr: addr.map(|a| {
                let (a, p) = a.split_once('/').unwrap();
                (a.parse().unwrap(), p.parse().unwrap())
            }),
            kind,
            up,
            mtu,
            mac,
        };
        let mac = Some(MacAddr([0x7e, 0x87, 0x50, 0xd9, 0xf2, 0x1f]));
        let ifaces = [
            row(
                "lo",
                Some("127.0.0.1/8"),
                IfKind::Loopback,
                true,
                65536,
                None,
            ),
            row(
                "eth0",
                Some("198.18.200.1/24"),
                IfKind::Ethernet,
                true,
                1400,
                mac,
            ),
            row("eth1", None, IfKind::Ethernet, false, 1500, mac),
        ];
        let routes = [
            RouteRow {
                dest: "198.19.0.0".parse().unwrap(),
                prefix: 16,
                dev: "eth0".into(),
                metric: 7,
                gateway: Some("198.18.200.2".parse().unwrap()),
            },
            RouteRow {
                dest: "::1".parse().unwrap(),
                prefix: 128,
                dev: "lo".into(),
                metric: 0,
                gateway: None,
            },
        ];
        assert_eq!(
            render(&ifaces, &routes),
            "************************INTERFACES************************
DEV  (SHORT) IP/MASK         TYPE     UP   MTU   MAC
lo   (lo)    127.0.0.1/8     loopback up   65536
eth0 (eth0)  198.18.200.1/24 ethernet up   1400  7E:87:50:D9:F2:1F
eth1 (eth1)  (none)/0        ethernet down 1500  7E:87:50:D9:F2:1F

**************************ROUTES**************************
DST/MASK      DEV  METRIC GATEWAY
198.19.0.0/16 eth0 7      198.18.200.2
::1/128       lo   0

"
        );
        assert_eq!(
            render(&[], &[]),
            "INTERFACES: NONE FOUND(!)\nROUTES: NONE FOUND(!)\n"
        );
    }
}
