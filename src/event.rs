//! `Event`: what sources tell the daemon. Sources only translate bytes into these.

pub use crate::report::{CgroupFollow, EngineState, EngineStatus, HookRun, PolicyReport};
use crate::wire::control::Request;
use crate::wire::docker::Container;
pub use crate::wire::nft_monitor::Change as NftChange;
pub use crate::wire::rtnetlink::{Address, Link};

/// One foreign nftables commit: who made it and what it touched (changes of the same object
/// merged, element counts summed).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NftCommit {
    pub pid: u32,
    pub process: String,
    pub changes: Vec<NftChange>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignalKind {
    Reload,
    Stop,
    /// `SIGUSR1`: log a one-line state summary.
    Summary,
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
    /// Every network the Engine has.
    DockerNetworks(Vec<crate::wire::docker::EngineNetwork>),
    /// A network request (create, delete, connect) finished.
    DockerNetResult {
        action: String,
        error: Option<String>,
    },
    /// One request line from a control-socket client.
    Control {
        client: u64,
        request: Request,
    },
    Signal(SignalKind),
    /// Another process committed an nftables transaction (netmgrd's own are not reported).
    NftCommit(NftCommit),
    /// nftables notifications were lost (`ENOBUFS`, a message that does not decode): what
    /// netmgrd manages may have changed unseen.
    NftLost(String),
    /// Every cgroup under the cgroup root (paths relative to it, with ids) after a full scan:
    /// replaces what was known.
    CgroupSnapshot(Vec<(String, u64)>),
    /// A cgroup directory appeared.
    CgroupAdded {
        path: String,
        id: u64,
    },
    /// A cgroup directory, and everything below it, went.
    CgroupRemoved {
        path: String,
    },
    /// The journal named these units: every cgroup at or below a directory with one of these
    /// names is replaced by `found` (a fresh look at the tree for just those units).
    CgroupUnits {
        units: Vec<String>,
        found: Vec<(String, u64)>,
    },
    /// How cgroups are followed now, for `status`.
    CgroupFollow(CgroupFollow),
    /// netmgrd's policy rules and routes after a reconcile.
    Policy(PolicyReport),
    /// The main-table routes out of a policy-routing interface changed: all of them now.
    LinkRoutes {
        index: u32,
        routes: Vec<String>,
    },
    /// A hook script finished; `link` is `None` for `manager.d`.
    HookFinished {
        link: Option<String>,
        run: HookRun,
    },
    /// A child process ended (reaped on `SIGCHLD`): its pid and raw wait status, so the
    /// source that spawned it can learn how it ended.
    ChildExited {
        pid: i32,
        status: i32,
    },
}
