//! netmgrd command line: `run` (default), `check`, `ctl`, `version`.

use netmgrd::config::{self, CgroupWatch, Config, LogLevel, LogTarget};
use netmgrd::daemon::{set_log_level, ConfigSource, Daemon};
use netmgrd::event_loop::{self, Source};
use netmgrd::kernel::NftKernel;
use netmgrd::nft::Nft;
use netmgrd::setup::Setup;
use netmgrd::sources::{
    cgroups::CgroupSource, control::ControlSource, docker::DockerSource, hooks::HookRunner,
    journal::JournalSource, nft_monitor::NftMonitorSource, notify::NotifySource,
    policy_routing::PolicyRouter, rtnetlink::RtnlSource, signals::SignalSource,
};
use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

const USAGE: &str = "\
netmgrd: keeps nftables sets in step with interface addresses

usage:
  netmgrd [run] [--config PATH] [--socket PATH] [--user NAME] [--log-level LEVEL] [--log-target stderr|syslog|auto]
  netmgrd check [--print] [--config PATH]
  netmgrd import-scnpm NFTABLES_CONF   (scnpm's `# UNIT :: add rule ...` comments -> cgroups config + nft)
  netmgrd ctl [--socket PATH] [--config PATH] [--json] COMMAND
  netmgrd --version | --help

config lookup: --config, $NETMGRD_CONFIG, $RUST_NETWORK_MGR_CONFIG, /etc/netmgrd/config.yaml
ctl commands: ping, status, reload, sets, resync, containers, ruleset, metrics, cgroups, help
exit codes: 0 ok, 1 failure (invalid config, reply not ok, runtime error), 2 usage error";

#[derive(Default)]
struct Args {
    command: String,
    config: Option<PathBuf>,
    socket: Option<PathBuf>,
    user: Option<String>,
    log_level: Option<LogLevel>,
    log_target: Option<LogTarget>,
    json: bool,
    print: bool,
    rest: Vec<String>,
}

fn parse_args(argv: Vec<String>) -> Result<Args, String> {
    let mut args = Args::default();
    let mut it = argv.into_iter().peekable();
    let value = |flag: &str, it: &mut std::iter::Peekable<std::vec::IntoIter<String>>| {
        it.next().ok_or_else(|| format!("{flag} needs a value"))
    };
    while let Some(a) = it.next() {
        // After ctl's command word, everything is the request.
        if args.command == "ctl" && !args.rest.is_empty() {
            args.rest.push(a);
            continue;
        }
        let (flag, inline) = match a.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (a.clone(), None),
        };
        let take = |it: &mut std::iter::Peekable<std::vec::IntoIter<String>>| match &inline {
            Some(v) => Ok(v.clone()),
            None => value(&flag, it),
        };
        match flag.as_str() {
            "--config" | "-c" => args.config = Some(PathBuf::from(take(&mut it)?)),
            "--socket" | "-s" => args.socket = Some(PathBuf::from(take(&mut it)?)),
            "--log-level" => {
                let v = take(&mut it)?;
                args.log_level = Some(LogLevel::parse(&v).ok_or(format!("unknown log level `{v}`"))?);
            }
            "--log-target" => {
                let v = take(&mut it)?;
                args.log_target = Some(match v.as_str() {
                    "stderr" => LogTarget::Stderr,
                    "syslog" => LogTarget::Syslog,
                    "auto" => LogTarget::Auto,
                    _ => return Err(format!("unknown log target `{v}`")),
                });
            }
            "--user" | "-u" => args.user = Some(take(&mut it)?),
            "--json" => args.json = true,
            "--print" => args.print = true,
            "--help" | "-h" => args.command = "help".into(),
            "--version" | "-V" => args.command = "version".into(),
            s if s.starts_with('-') => return Err(format!("unknown option `{s}`")),
            _ if args.command.is_empty() => args.command = a,
            _ => args.rest.push(a),
        }
    }
    if args.command.is_empty() {
        args.command = "run".into();
    }
    Ok(args)
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1).collect()) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("netmgrd: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match args.command.as_str() {
        "run" => run(args),
        "check" => check(args),
        "ctl" => ctl(args),
        "import-scnpm" => import_scnpm(&args),
        "version" => {
            println!("netmgrd {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        "help" => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        other => {
            eprintln!("netmgrd: unknown command `{other}`\n\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

/// Prints the netmgrd form of scnpm's commented rules; errors (with lines) on stderr, exit 1.
fn import_scnpm(args: &Args) -> ExitCode {
    let [file] = args.rest.as_slice() else {
        eprintln!("netmgrd import-scnpm: which nftables.conf?\n\n{USAGE}");
        return ExitCode::from(2);
    };
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("netmgrd import-scnpm: {file}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let out = netmgrd::scnpm::import(&text);
    println!("# netmgrd config (merge into config.yaml); {} scnpm rule(s) read from {file}", out.rules);
    println!("{}", out.config);
    println!("# nftables");
    print!("{}", out.nft);
    for e in &out.errors {
        eprintln!("{file}:{e}");
    }
    if out.errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn config_path(args: &Args) -> PathBuf {
    config::resolve_path(args.config.as_deref(), |k| std::env::var(k).ok())
}

fn check(args: Args) -> ExitCode {
    let path = config_path(&args);
    match Setup::load(&path) {
        Ok(setup) => {
            let c = &setup.config;
            for w in &c.warnings {
                eprintln!("{}: warning: {w}", path.display());
            }
            if args.print {
                print!("{}", check_print(&setup));
                return ExitCode::SUCCESS;
            }
            println!(
                "{}: ok ({} zone(s), {} interface(s))",
                path.display(),
                c.zone_names().len(),
                c.interfaces.len()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// What `check --print` prints: the owned table as nft text.
fn check_print(setup: &Setup) -> String {
    match &setup.owned {
        Some(o) => o.table.render(),
        None => "# netmgrd owns no table with this config\n".to_string(),
    }
}

fn run(args: Args) -> ExitCode {
    let path = config_path(&args);
    let source = ConfigSource {
        path: path.clone(),
        log_level_override: args.log_level.map(|l| l.to_filter()),
        socket_override: args.socket.clone(),
        docker_host: std::env::var("DOCKER_HOST").ok(),
    };
    let setup = match source.load() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let config = &setup.config;
    let level = args.log_level.unwrap_or(config.log.level).to_filter();
    netmgrd::logging::init(args.log_target.unwrap_or(config.log.target), level);
    for w in &config.warnings {
        log::warn!("{w}");
    }
    let fail = |what: &str, e: &dyn std::fmt::Display| {
        log::error!("{what}: {e}");
        ExitCode::FAILURE
    };
    // Taken out of the environment while single-threaded, so no child notifies for us.
    let notify = NotifySource::from_env_value(std::env::var("NOTIFY_SOCKET").ok());
    std::env::remove_var("NOTIFY_SOCKET");
    // Signals first, so a TERM during start-up is not lost.
    let signals = match SignalSource::install() {
        Ok(s) => s,
        Err(e) => return fail("cannot install signal handlers", &e),
    };
    // The monitor before the first read of the sets, so no foreign commit falls in between.
    let monitor = match NftMonitorSource::open() {
        Ok(m) => m,
        Err(e) => return fail("cannot open the nftables monitor", &e),
    };
    let nft = match Nft::open() {
        Ok(n) => n,
        Err(e) => return fail("cannot open nftables", &e),
    };
    let rtnl = match RtnlSource::open() {
        Ok(r) => r,
        Err(e) => return fail("cannot open rtnetlink", &e),
    };
    let control = match ControlSource::bind(
        &config.control.socket,
        config.control.mode,
        config.control.group.as_deref(),
    ) {
        Ok(c) => c,
        Err(e) => return fail("cannot start", &e),
    };
    // Cgroups are followed when the config asks at start (a reload changes the sets, not this).
    let cgroups: Option<Box<dyn Source>> = match &config.cgroups {
        Some(c) => match c.root.clone().or_else(netmgrd::sources::cgroups::find_root) {
            Some(root) if !root.is_dir() => {
                return fail("cgroups", &format!("cgroups.root {} is not a directory", root.display()))
            }
            Some(root) => {
                let journal = match c.watch {
                    CgroupWatch::Journal => true,
                    CgroupWatch::Inotify => false,
                    // sd_booted(): systemd is PID 1 when this directory exists.
                    CgroupWatch::Auto => Path::new("/run/systemd/system").is_dir(),
                };
                if journal {
                    Some(Box::new(JournalSource::open(&root, "journalctl")))
                } else {
                    match CgroupSource::open(&root) {
                        Ok(s) => Some(Box::new(s)),
                        Err(e) => return fail(&format!("cannot watch cgroups under {}", root.display()), &e),
                    }
                }
            }
            None => return fail("cgroups", &"no cgroup2 mount in /proc/self/mounts; set cgroups.root"),
        },
        None => None,
    };
    // Opened whether or not policy_routing is configured now: a reload may add it.
    let policy = match PolicyRouter::open() {
        Ok(p) => p,
        Err(e) => return fail("cannot open rtnetlink for policy routing", &e),
    };
    // Everything that needs root is open: become the configured user with CAP_NET_ADMIN only.
    if let Some(user) = args.user.clone().or_else(|| config.user.clone()) {
        let dropped = netmgrd::sys::privilege::lookup(&user).and_then(netmgrd::sys::privilege::drop_to);
        match dropped {
            Ok(()) => log::info!("running as `{user}` with CAP_NET_ADMIN only"),
            Err(e) => return fail(&format!("cannot run as `{user}`"), &e),
        }
    }
    let docker = DockerSource::new(source.docker_socket(&setup));
    let hooks = setup.config.hooks.clone();
    set_log_level(&setup, &source);
    log::info!(
        "netmgrd {} started: config {}, control {}",
        env!("CARGO_PKG_VERSION"),
        path.display(),
        config.control.socket.display()
    );
    let mut daemon = Daemon::new(setup, source, NftKernel::new(nft));
    let mut sources: Vec<Box<dyn Source>> = vec![
        Box::new(signals),
        Box::new(rtnl),
        Box::new(monitor),
        Box::new(control),
        Box::new(docker),
        Box::new(notify),
    ];
    sources.extend(cgroups);
    sources.push(Box::new(HookRunner::new(hooks)));
    sources.push(Box::new(policy));
    match event_loop::run(&mut sources, &mut daemon) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail("event loop", &e),
    }
}

/// The socket `ctl` talks to: `--socket`, else the config's (when it reads), else the default.
fn ctl_socket(args: &Args) -> PathBuf {
    if let Some(s) = &args.socket {
        return s.clone();
    }
    Config::load(&config_path(args))
        .map(|c| c.control.socket)
        .unwrap_or_else(|_| PathBuf::from(config::DEFAULT_SOCKET_PATH))
}

fn ctl(args: Args) -> ExitCode {
    let Some(command) = args.rest.first().cloned() else {
        eprintln!("netmgrd ctl: which command? (ping, status, reload, sets, resync, help)");
        return ExitCode::from(2);
    };
    let socket = ctl_socket(&args);
    match ctl_request(&socket, &args.rest.join(" ")) {
        Ok(line) => {
            let reply: Value = match serde_json::from_str(&line) {
                Ok(v) => v,
                Err(e) => {
                    eprintln!("netmgrd ctl: unreadable reply ({e}): {line}");
                    return ExitCode::FAILURE;
                }
            };
            let ok = reply["ok"] == Value::Bool(true);
            if args.json {
                println!("{line}");
            } else if ok {
                match netmgrd::report::render(&command, reply["result"].clone()) {
                    Ok(text) => println!("{text}"),
                    Err(e) => {
                        eprintln!("netmgrd ctl: unexpected reply ({e}): {line}");
                        return ExitCode::FAILURE;
                    }
                }
            } else {
                eprintln!("error: {}", reply["error"].as_str().unwrap_or("(no message)"));
            }
            if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("netmgrd ctl: {}: {e}", socket.display());
            ExitCode::FAILURE
        }
    }
}

/// How long `ctl` waits for a reply.
const CTL_TIMEOUT: Duration = Duration::from_secs(10);

fn ctl_request(socket: &Path, request: &str) -> std::io::Result<String> {
    let mut stream = UnixStream::connect(socket)?;
    stream.set_read_timeout(Some(CTL_TIMEOUT))?;
    // A refusing daemon (permissions, too many clients) answers and closes before reading:
    // the write may then fail while its reply is already waiting to be read.
    let written = stream.write_all(format!("{request}\n").as_bytes());
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line).map_err(|e| match e.kind() {
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("no reply within {} s (netmgrd is busy or stuck; see its log)", CTL_TIMEOUT.as_secs()),
        ),
        _ => e,
    })?;
    if line.is_empty() {
        written?;
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "connection closed without a reply",
        ));
    }
    Ok(line.trim_end().to_string())
}
