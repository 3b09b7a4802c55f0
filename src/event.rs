//! `Event`: what sources tell the daemon. Sources only translate bytes into these.

use crate::prefix::IpPrefix;
use crate::wire::control::Request;
use crate::wire::docker::Container;

/// A network interface as rtnetlink reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub name: String,
    /// Administratively up (`IFF_UP`).
    pub up: bool,
}

/// An interface address with the attributes the address rule looks at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Address {
    pub index: u32,
    pub prefix: IpPrefix,
    /// `ifa_scope`: 0 universe (global), 200 site, 253 link, 254 host.
    pub scope: u8,
    /// `IFA_F_*` flags (from `IFA_FLAGS` when present, else `ifa_flags`).
    pub flags: u32,
}

/// The Docker Engine connection as the source sees it, for `status`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EngineStatus {
    /// `connecting`, `syncing`, `connected` or `disconnected`.
    pub state: &'static str,
    pub socket: String,
    pub api_version: Option<String>,
    pub error: Option<String>,
    pub reconnects: u64,
    /// Unix time of the last event line from the Engine.
    pub last_event_unix: Option<u64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignalKind {
    Reload,
    Stop,
    Child,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// A complete rtnetlink dump: replaces every link and address known before.
    NetSnapshot {
        links: Vec<Link>,
        addrs: Vec<Address>,
    },
    /// A link appeared or changed (name, up/down).
    LinkChanged(Link),
    LinkRemoved {
        index: u32,
    },
    AddrAdded(Address),
    AddrRemoved(Address),
    /// The rtnetlink source lost events (`ENOBUFS`) and is dumping again.
    NetResyncing,
    /// Every running container after a full Docker sync: replaces what was known.
    DockerSnapshot(Vec<Container>),
    /// A container started, changed networks, or was re-inspected.
    ContainerUp(Container),
    /// A container stopped, paused, was removed, or vanished.
    ContainerGone(String),
    Engine(EngineStatus),
    /// One request line from a control-socket client.
    Control {
        client: u64,
        request: Request,
    },
    Signal(SignalKind),
}
