//! The hosts a script phase runs against, as the engine holds them while scripts read and
//! change them: the host and port tables scripts see (Nmap's `set_hostinfo` and
//! `set_portinfo`), port state and version changes (`nmap.set_port_state`,
//! `nmap.set_port_version`), and the script results.

use mlua::{Lua, Table, Value};
use portolan_model::{
    AddrType, Host, HostnameType, Port, PortState, Protocol, Script, ScriptItem, Service,
    ServiceMethod,
};

/// The hosts of one phase, indexed as the host tables' `_Target` field says.
#[derive(Debug, Default)]
pub struct Hosts {
    pub hosts: Vec<Host>,
    /// Results of pre-scan or post-scan scripts (no host).
    pub run_scripts: Vec<Script>,
}

fn mac_bytes(text: &str) -> Option<Vec<u8>> {
    let bytes: Option<Vec<u8>> = text
        .split(':')
        .map(|p| u8::from_str_radix(p, 16).ok())
        .collect();
    bytes.filter(|b| b.len() == 6)
}

fn bin_ip(text: &str) -> Option<Vec<u8>> {
    match text.parse::<std::net::IpAddr>().ok()? {
        std::net::IpAddr::V4(a) => Some(a.octets().to_vec()),
        std::net::IpAddr::V6(a) => Some(a.octets().to_vec()),
    }
}

/// Settings of the scan that the host tables carry.
#[derive(Debug, Clone, Default)]
pub struct HostContext {
    pub interface: Option<String>,
    pub source_ip: Option<String>,
}

impl Hosts {
    /// The host table of host `idx` (Nmap's `set_hostinfo`).
    pub fn host_table(&self, lua: &Lua, idx: usize, ctx: &HostContext) -> mlua::Result<Table> {
        let h = &self.hosts[idx];
        let t = lua.create_table()?;
        t.set("_Target", idx)?;
        let ip = h.addr_str();
        t.set("ip", ip)?;
        let ptr = h.hostnames.iter().find(|n| n.kind == HostnameType::Ptr);
        let user = h.hostnames.iter().find(|n| n.kind == HostnameType::User);
        t.set("name", ptr.map(|n| n.name.as_str()).unwrap_or(""))?;
        if let Some(u) = user {
            t.set("targetname", u.name.as_str())?;
        }
        t.set("reason", h.status.reason.as_str())?;
        t.set("reason_ttl", h.status.reason_ttl)?;
        if let Some(mac) = h
            .addresses
            .iter()
            .find(|a| a.addrtype == AddrType::Mac)
            .and_then(|a| mac_bytes(&a.addr))
        {
            t.set("mac_addr", lua.create_string(&mac)?)?;
            t.set("mac_addr_next_hop", lua.create_string(&mac)?)?;
            t.set("directly_connected", true)?;
        }
        if let Some(i) = &ctx.interface {
            t.set("interface", i.as_str())?;
        }
        if let Some(b) = bin_ip(ip) {
            t.set("bin_ip", lua.create_string(&b)?)?;
        }
        if let Some(b) = ctx.source_ip.as_deref().and_then(bin_ip) {
            t.set("bin_ip_src", lua.create_string(&b)?)?;
        }
        let times = lua.create_table()?;
        if let Some(tm) = &h.times {
            times.set("srtt", tm.srtt as f64 / 1_000_000.0)?;
            times.set("rttvar", tm.rttvar as f64 / 1_000_000.0)?;
            times.set("timeout", tm.to as f64 / 1_000_000.0)?;
        }
        t.set("times", times)?;
        t.set("registry", lua.create_table()?)?;
        if let Some(trace) = &h.trace {
            let hops = lua.create_table()?;
            for hop in &trace.hops {
                let ht = lua.create_table()?;
                if let Some(ip) = &hop.ipaddr {
                    ht.set("ip", ip.as_str())?;
                    if let Some(n) = &hop.host {
                        ht.set("name", n.as_str())?;
                    }
                    let rtt: f64 = hop
                        .rtt
                        .as_deref()
                        .and_then(|r| r.parse().ok())
                        .unwrap_or(0.0);
                    ht.set("srtt", rtt / 1000.0)?;
                }
                hops.push(ht)?;
            }
            t.set("traceroute", hops)?;
        }
        if let Some(os) = &h.os {
            if let Some(matches) = os_table(lua, os)? {
                t.set("os", matches)?;
            }
            // Nmap gives the raw fingerprint; ours is kept only where it is printed.
            if let Some(fp) = os.fingerprints.first() {
                t.set("os_fp", fp.as_str())?;
            }
        }
        Ok(t)
    }

    fn port(&self, idx: usize, number: u16, proto: Protocol) -> Option<&Port> {
        self.hosts
            .get(idx)?
            .ports
            .iter()
            .find(|p| p.portid == number && p.protocol == proto)
    }

    fn port_mut(&mut self, idx: usize, number: u16, proto: Protocol) -> Option<&mut Port> {
        self.hosts
            .get_mut(idx)?
            .ports
            .iter_mut()
            .find(|p| p.portid == number && p.protocol == proto)
    }

    /// The port table (Nmap's `set_portinfo`) of a listed port, or nil.
    pub fn port_table(
        &self,
        lua: &Lua,
        idx: usize,
        number: u16,
        proto: &str,
    ) -> mlua::Result<Value> {
        let Some(proto) = proto.parse::<Protocol>().ok() else {
            return Ok(Value::Nil);
        };
        match self.port(idx, number, proto) {
            Some(p) => Ok(Value::Table(port_table(lua, p)?)),
            None => Ok(Value::Nil),
        }
    }

    /// `cnse.ports`: the open, open|filtered and unfiltered ports, in that order.
    pub fn script_ports(&self, lua: &Lua, idx: usize) -> mlua::Result<Table> {
        let list = lua.create_table()?;
        if let Some(h) = self.hosts.get(idx) {
            for state in [
                PortState::Open,
                PortState::OpenFiltered,
                PortState::Unfiltered,
            ] {
                for p in h.ports.iter().filter(|p| p.state == state) {
                    list.push(port_table(lua, p)?)?;
                }
            }
        }
        Ok(list)
    }

    /// `nmap.get_ports`: the next port after `after` with this protocol and state.
    pub fn next_port(
        &self,
        lua: &Lua,
        idx: usize,
        after: Option<u16>,
        proto: &str,
        state: &str,
    ) -> mlua::Result<Value> {
        let (Some(proto), Ok(state)) = (proto.parse::<Protocol>().ok(), state.parse::<PortState>())
        else {
            return Ok(Value::Nil);
        };
        let Some(h) = self.hosts.get(idx) else {
            return Ok(Value::Nil);
        };
        let next = h
            .ports
            .iter()
            .filter(|p| p.protocol == proto && p.state == state)
            .filter(|p| after.is_none_or(|a| p.portid > a))
            .min_by_key(|p| p.portid);
        match next {
            Some(p) => Ok(Value::Table(port_table(lua, p)?)),
            None => Ok(Value::Nil),
        }
    }

    /// `nmap.set_port_state`: a script saw the port open or closed.
    pub fn set_port_state(&mut self, idx: usize, number: u16, proto: &str, state: &str) {
        let (Some(proto), Ok(state)) = (proto.parse::<Protocol>().ok(), state.parse::<PortState>())
        else {
            return;
        };
        if let Some(p) = self.port_mut(idx, number, proto) {
            if p.state != state {
                p.state = state;
                p.reason = "script-set".into();
                p.reason_ttl = 0;
            }
        }
    }

    /// `nmap.set_port_version`: what a version script found.
    pub fn set_port_version(
        &mut self,
        idx: usize,
        number: u16,
        proto: &str,
        probestate: &str,
        v: &Table,
    ) -> mlua::Result<()> {
        let Some(proto) = proto.parse::<Protocol>().ok() else {
            return Ok(());
        };
        let Some(p) = self.port_mut(idx, number, proto) else {
            return Ok(());
        };
        let get = |k: &str| -> mlua::Result<Option<String>> {
            Ok(v.get::<Option<String>>(k)?.filter(|s| !s.is_empty()))
        };
        let cpes: Vec<String> = v
            .get::<Table>("cpe")?
            .sequence_values()
            .collect::<Result<_, _>>()?;
        let old = p.service.take().unwrap_or_default();
        let name = get("name")?.unwrap_or(old.name);
        let hard = probestate == "hardmatched";
        p.service = Some(Service {
            name,
            product: get("product")?,
            version: get("version")?,
            extrainfo: get("extrainfo")?,
            hostname: get("hostname")?,
            ostype: get("ostype")?,
            devicetype: get("devicetype")?,
            method: ServiceMethod::Probed,
            conf: if probestate == "tcpwrapped" { 8 } else { 10 },
            tunnel: get("service_tunnel")?.filter(|t| t == "ssl"),
            // Kept on one line, as XML holds it: a script may hand back Nmap's wrapped form.
            servicefp: if hard {
                None
            } else {
                get("service_fp")?.map(|fp| fp.replace("\nSF:", ""))
            },
            cpes,
        });
        Ok(())
    }

    /// Records one script's result where `cnse.*_set_output` put it.
    pub fn set_output(&mut self, idx: Option<usize>, port: Option<(u16, &str)>, script: Script) {
        match (idx, port) {
            (None, _) => self.run_scripts.push(script),
            (Some(i), None) => {
                if let Some(h) = self.hosts.get_mut(i) {
                    h.hostscripts.push(script);
                }
            }
            (Some(i), Some((number, proto))) => {
                if let Some(p) = proto
                    .parse::<Protocol>()
                    .ok()
                    .and_then(|pr| self.port_mut(i, number, pr))
                {
                    p.scripts.push(script);
                }
            }
        }
    }
}

fn port_table(lua: &Lua, p: &Port) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.set("number", p.portid)?;
    t.set("protocol", p.protocol.as_str())?;
    t.set("state", p.state.as_str())?;
    t.set("reason", p.reason.as_str())?;
    t.set("reason_ttl", p.reason_ttl)?;
    let v = lua.create_table()?;
    let cpe = lua.create_table()?;
    if let Some(s) = &p.service {
        t.set("service", s.name.as_str())?;
        v.set("name", s.name.as_str())?;
        v.set("name_confidence", s.conf)?;
        for (k, x) in [
            ("product", &s.product),
            ("version", &s.version),
            ("extrainfo", &s.extrainfo),
            ("hostname", &s.hostname),
            ("ostype", &s.ostype),
            ("devicetype", &s.devicetype),
            ("service_fp", &s.servicefp),
        ] {
            if let Some(x) = x {
                v.set(k, x.as_str())?;
            }
        }
        v.set(
            "service_tunnel",
            if s.tunnel.as_deref() == Some("ssl") {
                "ssl"
            } else {
                "none"
            },
        )?;
        v.set("service_dtype", s.method.as_str())?;
        for c in &s.cpes {
            cpe.push(c.as_str())?;
        }
    } else {
        v.set("name_confidence", 0)?;
        v.set("service_tunnel", "none")?;
        v.set("service_dtype", "table")?;
    }
    v.set("cpe", cpe)?;
    t.set("version", v)?;
    Ok(t)
}

/// Turns the structure captured from FORMAT_XML (nodes `{kind, key, value | items}`) into
/// the model's items.
pub fn items_from_lua(t: &Table) -> mlua::Result<Vec<ScriptItem>> {
    let mut out = Vec::new();
    for node in t.sequence_values::<Table>() {
        let node = node?;
        let kind: String = node.get("kind")?;
        let key: Option<String> = node.get("key")?;
        if kind == "table" {
            let items: Table = node.get("items")?;
            out.push(ScriptItem::Table {
                key,
                items: items_from_lua(&items)?,
            });
        } else {
            let value: Option<mlua::LuaString> = node.get("value")?;
            out.push(ScriptItem::Elem {
                key,
                value: value
                    .map(|s| String::from_utf8_lossy(&s.as_bytes()).into_owned())
                    .unwrap_or_default(),
            });
        }
    }
    Ok(out)
}

/// `host.os` (Nmap's set_hostinfo): only perfect matches, and only when there are one to
/// eight of them; each with the classes of the host's classification (here: of the perfect
/// matches, each class once).
fn os_table(lua: &Lua, os: &portolan_model::Os) -> mlua::Result<Option<Table>> {
    let perfect: Vec<&portolan_model::OsMatch> =
        os.matches.iter().filter(|m| m.accuracy == 100).collect();
    if perfect.is_empty() || perfect.len() > 8 {
        return Ok(None);
    }
    let mut classes: Vec<&portolan_model::OsClass> = Vec::new();
    for c in perfect.iter().flat_map(|m| &m.classes) {
        let same = |k: &&portolan_model::OsClass| {
            k.vendor == c.vendor
                && k.osfamily == c.osfamily
                && k.osgen == c.osgen
                && k.kind == c.kind
        };
        if !classes.iter().any(same) {
            classes.push(c);
        }
    }
    let list = lua.create_table()?;
    for m in perfect {
        let mt = lua.create_table()?;
        mt.set("name", m.name.as_str())?;
        let ct = lua.create_table()?;
        for c in &classes {
            let one = lua.create_table()?;
            one.set("vendor", c.vendor.as_str())?;
            one.set("osfamily", c.osfamily.as_str())?;
            if let Some(g) = &c.osgen {
                one.set("osgen", g.as_str())?;
            }
            if let Some(k) = &c.kind {
                one.set("type", k.as_str())?;
            }
            one.set(
                "cpe",
                lua.create_sequence_from(c.cpes.iter().map(String::as_str))?,
            )?;
            ct.push(one)?;
        }
        mt.set("classes", ct)?;
        list.push(mt)?;
    }
    Ok(Some(list))
}
