//! netmgrd command line: `run` (default), `check`, `ctl`, `version`.

use netmgrd::config::{self, Config, LogLevel, LogTarget};
use netmgrd::daemon::{set_log_level, ConfigSource, Daemon};
use netmgrd::event_loop::{self, Source};
use netmgrd::nft::Nft;
use netmgrd::sources::{
    control::ControlSource, docker::DockerSource, rtnetlink::RtnlSource, signals::SignalSource,
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
  netmgrd [run] [--config PATH] [--socket PATH] [--log-level LEVEL] [--log-target stderr|syslog|auto]
  netmgrd check [--print] [--config PATH]
  netmgrd ctl [--socket PATH] [--config PATH] [--json] COMMAND
  netmgrd --version | --help

config lookup: --config, $NETMGRD_CONFIG, $RUST_NETWORK_MGR_CONFIG, /etc/netmgrd/config.yaml
ctl commands: ping, status, reload, sets, resync, containers, ruleset, help
exit codes: 0 ok, 1 failure (invalid config, reply not ok, runtime error), 2 usage error";

#[derive(Default)]
struct Args {
    command: String,
    config: Option<PathBuf>,
    socket: Option<PathBuf>,
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

fn config_path(args: &Args) -> PathBuf {
    config::resolve_path(args.config.as_deref(), |k| std::env::var(k).ok())
}

fn check(args: Args) -> ExitCode {
    let path = config_path(&args);
    match Config::load(&path) {
        Ok(c) => {
            for w in &c.warnings {
                eprintln!("{}: warning: {w}", path.display());
            }
            if args.print {
                match &c.owned {
                    Some((table, _)) => print!("{}", table.render()),
                    None => println!("# netmgrd owns no table with this config"),
                }
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

fn run(args: Args) -> ExitCode {
    let path = config_path(&args);
    let mut config = match Config::load(&path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(s) = &args.socket {
        config.control.socket = s.clone();
    }
    let level = args.log_level.unwrap_or(config.log.level).to_filter();
    netmgrd::logging::init(args.log_target.unwrap_or(config.log.target), level);
    for w in &config.warnings {
        log::warn!("{w}");
    }
    let fail = |what: &str, e: &dyn std::fmt::Display| {
        log::error!("{what}: {e}");
        ExitCode::FAILURE
    };
    // Signals first, so a TERM during start-up is not lost.
    let signals = match SignalSource::install() {
        Ok(s) => s,
        Err(e) => return fail("cannot install signal handlers", &e),
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
    let source = ConfigSource {
        path: path.clone(),
        log_level_override: args.log_level.map(|l| l.to_filter()),
        docker_host: std::env::var("DOCKER_HOST").ok(),
    };
    let docker = DockerSource::new(source.docker_socket(&config));
    set_log_level(&config, &source);
    log::info!(
        "netmgrd {} started: config {}, control {}",
        env!("CARGO_PKG_VERSION"),
        path.display(),
        config.control.socket.display()
    );
    let mut daemon = Daemon::new(config, source, nft);
    let mut sources: Vec<Box<dyn Source>> =
        vec![Box::new(signals), Box::new(rtnl), Box::new(control), Box::new(docker)];
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
                println!("{}", render(&command, &reply["result"]));
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

fn ctl_request(socket: &Path, request: &str) -> std::io::Result<String> {
    let mut stream = UnixStream::connect(socket)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    // A refusing daemon (permissions, too many clients) answers and closes before reading:
    // the write may then fail while its reply is already waiting to be read.
    let written = stream.write_all(format!("{request}\n").as_bytes());
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line)?;
    if line.is_empty() {
        written?;
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "connection closed without a reply",
        ));
    }
    Ok(line.trim_end().to_string())
}

fn text(v: &Value) -> String {
    v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string())
}

/// One `status` line for a managed set, with its error when it has one.
fn set_line(set: &Value) -> String {
    format!(
        "  set {} ({}): {} element(s), {}{}\n",
        text(&set["set"]),
        text(&set["type"]),
        set["elements"],
        text(&set["health"]),
        set.get("error").map(|e| format!(": {}", text(e))).unwrap_or_default()
    )
}

/// Readable text for a reply's result.
fn render(command: &str, r: &Value) -> String {
    let s = text;
    match command {
        "status" => {
            let mut out = format!(
                "netmgrd {} (pid {}), up {}s, config {}{}\n",
                s(&r["version"]),
                r["pid"],
                r["uptime_s"],
                s(&r["config"]),
                if r["ready"] == Value::Bool(true) { "" } else { " (waiting for the first rtnetlink dump)" }
            );
            if let Some(zones) = r["zones"].as_object() {
                for (zone, z) in zones {
                    out.push_str(&format!("zone {zone}\n"));
                    for i in z["interfaces"].as_array().into_iter().flatten() {
                        let state = match (i["present"].as_bool(), i["up"].as_bool()) {
                            (Some(true), Some(true)) => "up",
                            (Some(true), _) => "down",
                            _ => "absent",
                        };
                        let addrs: Vec<String> =
                            i["addresses"].as_array().into_iter().flatten().map(s).collect();
                        out.push_str(&format!(
                            "  interface {}: {state} {}\n",
                            s(&i["name"]),
                            addrs.join(" ")
                        ));
                    }
                    for set in z["sets"].as_array().into_iter().flatten() {
                        out.push_str(&set_line(set));
                    }
                }
            }
            if r["docker"].is_object() {
                let d = &r["docker"];
                out.push_str(&format!(
                    "docker {} ({}), API {}, {} container(s), {} reconnect(s){}\n",
                    s(&d["state"]),
                    s(&d["socket"]),
                    s(&d["api_version"]),
                    d["containers"],
                    d["reconnects"],
                    if d["error"].is_null() {
                        String::new()
                    } else {
                        format!(", last error: {}", s(&d["error"]))
                    }
                ));
                for set in d["sets"].as_array().into_iter().flatten() {
                    out.push_str(&set_line(set));
                }
            }
            out.push_str(&format!(
                "nft batches: {}, reloads: {}, last error: {}",
                r["nft_batches"],
                r["reloads"],
                if r["last_error"].is_null() { "none".to_string() } else { s(&r["last_error"]) }
            ));
            out
        }
        "sets" => r
            .as_array()
            .into_iter()
            .flatten()
            .map(|set| {
                let elems: Vec<String> = set["elements"].as_array().into_iter().flatten().map(s).collect();
                format!(
                    "{} (zone {}, {}): {}",
                    s(&set["set"]),
                    s(&set["zone"]),
                    s(&set["health"]),
                    elems.join(" ")
                )
            })
            .collect::<Vec<_>>()
            .join("\n"),
        "containers" => r
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| {
                let nets: Vec<String> = c["networks"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(n, a)| {
                        let ips: Vec<String> =
                            [&a["ipv4"], &a["ipv6"]].into_iter().filter(|v| !v.is_null()).map(s).collect();
                        format!("{n}={}", ips.join(","))
                    })
                    .collect();
                let list =
                    |v: &Value| v.as_array().into_iter().flatten().map(s).collect::<Vec<_>>().join(" ");
                format!(
                    "{} {} nets: {} ports: {} sets: {}",
                    s(&c["name"]),
                    s(&c["id"]),
                    nets.join(" "),
                    list(&c["ports"]),
                    list(&c["sets"])
                )
            })
            .collect::<Vec<_>>()
            .join("\n"),
        "help" => r
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| format!("{:8} {}", s(&c["command"]), s(&c["does"])))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => s(r),
    }
}
