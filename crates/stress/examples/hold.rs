//! Opens and holds many idle TCP connections: the client side of `benches/scale.sh`. Not part of
//! ringport's load generator (which keeps every connection busy); a measuring stick for how many
//! connections a server holds.
//!
//! ```text
//! hold ADDR COUNT [--source-ips 127.0.0.2-127.0.0.254] [--rate N] [--secs S] [--in-flight K]
//!      [--connect-timeout S] [--check N] [--stop-file PATH] [--steps N --step-file PATH [--warm R]]
//! ```
//!
//! It raises its soft open-file limit to the hard one, then opens COUNT connections to ADDR, each
//! bound (`SO_REUSEADDR`, bind to port 0, then connect) to the next source address round-robin,
//! with non-blocking connects of which at most `--in-flight` (default 256) are in progress at once
//! and at most `--rate` (default: no limit) started per second. A connect not done within
//! `--connect-timeout` (default 10 s) counts as a timeout. Opening stops early when the process
//! runs out of descriptors, or after 2,000 failures in a row. Once opened it says so on stderr
//! (`hold: opened ...`), sends one message on `--check` (default 100) connections spread over the
//! set and checks the echo, holds everything for `--secs` (default 60) or until `--stop-file`
//! exists, checks the same sample again, counts the connections the server closed meanwhile, and
//! prints one `key=value` line on stdout.
//!
//! With `--steps N` (and `--step-file PATH`) it opens the connections in N equal steps and stops
//! after each one: it checks the sample, spread over the first step's connections (so that
//! every step has had the same echo traffic, on the same connections, and the later steps'
//! connections have never carried a byte; the first step checks it `--warm` times, default 1),
//! writes `STEP ESTABLISHED LAST` to PATH (LAST 1 at the last step; written aside, then
//! renamed) and waits until PATH is removed before opening the next step. A script reads the server's
//! memory while PATH exists: the growth from step to step, without the fixed costs the first
//! connections and the first echoes bring, is what each further connection costs
//! (`benches/idle-rss.sh`).
//!
//! One process holds at most its hard open-file limit (about 19,900 here), so the script runs
//! several.

#[cfg(unix)]
use std::collections::{BTreeMap, VecDeque};
#[cfg(unix)]
use std::io::{self, Read, Write};
#[cfg(unix)]
use std::net::{Ipv4Addr, SocketAddr};
#[cfg(unix)]
use std::path::PathBuf;
#[cfg(unix)]
use std::time::{Duration, Instant};

#[cfg(unix)]
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

#[cfg(unix)]
struct Args {
    addr: SocketAddr,
    count: usize,
    sources: Vec<Ipv4Addr>,
    rate: Option<f64>,
    secs: f64,
    in_flight: usize,
    connect_timeout: Duration,
    check: usize,
    stop_file: Option<PathBuf>,
    steps: usize,
    step_file: Option<PathBuf>,
    warm: u32,
}

#[cfg(unix)]
fn usage() -> ! {
    eprintln!(
        "usage: hold ADDR COUNT [--source-ips A-B|A,B,..] [--rate N] [--secs S] [--in-flight K] \
         [--connect-timeout S] [--check N] [--stop-file PATH] [--steps N --step-file PATH [--warm R]]"
    );
    std::process::exit(2);
}

#[cfg(unix)]
fn parse_sources(s: &str) -> Result<Vec<Ipv4Addr>, String> {
    let mut out = Vec::new();
    for part in s.split(',').filter(|p| !p.is_empty()) {
        if let Some((a, b)) = part.split_once('-') {
            let a: Ipv4Addr = a.parse().map_err(|_| format!("bad address {a}"))?;
            let b: Ipv4Addr = b.parse().map_err(|_| format!("bad address {b}"))?;
            let (a, b) = (u32::from(a), u32::from(b));
            if b < a || b - a > 1 << 20 {
                return Err(format!("bad range {part}"));
            }
            out.extend((a..=b).map(Ipv4Addr::from));
        } else {
            out.push(part.parse().map_err(|_| format!("bad address {part}"))?);
        }
    }
    if out.is_empty() {
        return Err("no source address".into());
    }
    Ok(out)
}

#[cfg(unix)]
fn parse_args() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let mut pos = Vec::new();
    let mut args = Args {
        addr: "127.0.0.1:3333".parse().unwrap_or_else(|_| usage()),
        count: 0,
        sources: Vec::new(),
        rate: None,
        secs: 60.0,
        in_flight: 256,
        connect_timeout: Duration::from_secs(10),
        check: 100,
        stop_file: None,
        steps: 1,
        step_file: None,
        warm: 1,
    };
    while let Some(a) = it.next() {
        let mut val = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        match a.as_str() {
            "--source-ips" => args.sources = parse_sources(&val(&a)?)?,
            "--rate" => {
                let r: f64 = val(&a)?.parse().map_err(|_| "bad --rate")?;
                args.rate = (r > 0.0).then_some(r);
            }
            "--secs" => args.secs = val(&a)?.parse().map_err(|_| "bad --secs")?,
            "--in-flight" => {
                args.in_flight = val(&a)?.parse().map_err(|_| "bad --in-flight")?;
                args.in_flight = args.in_flight.max(1);
            }
            "--connect-timeout" => {
                let s: f64 = val(&a)?.parse().map_err(|_| "bad --connect-timeout")?;
                args.connect_timeout = Duration::from_secs_f64(s.max(0.001));
            }
            "--check" => args.check = val(&a)?.parse().map_err(|_| "bad --check")?,
            "--stop-file" => args.stop_file = Some(PathBuf::from(val(&a)?)),
            "--steps" => {
                args.steps = val(&a)?.parse().map_err(|_| "bad --steps")?;
                args.steps = args.steps.max(1);
            }
            "--step-file" => args.step_file = Some(PathBuf::from(val(&a)?)),
            "--warm" => {
                args.warm = val(&a)?.parse().map_err(|_| "bad --warm")?;
                args.warm = args.warm.max(1);
            }
            "-h" | "--help" => usage(),
            _ if a.starts_with("--") => return Err(format!("unknown flag {a}")),
            _ => pos.push(a),
        }
    }
    if pos.len() != 2 {
        usage();
    }
    args.addr = pos[0].parse().map_err(|_| format!("bad ADDR {}", pos[0]))?;
    args.count = pos[1]
        .parse()
        .map_err(|_| format!("bad COUNT {}", pos[1]))?;
    if args.steps > 1 && args.step_file.is_none() {
        return Err("--steps needs --step-file".into());
    }
    Ok(args)
}

#[cfg(unix)]
/// A short name for why a connect failed.
fn kind(e: &io::Error) -> &'static str {
    match e.raw_os_error() {
        Some(libc::EMFILE) => return "emfile",
        Some(libc::ENFILE) => return "enfile",
        Some(libc::ENOBUFS) => return "enobufs",
        Some(libc::ENOMEM) => return "enomem",
        _ => {}
    }
    match e.kind() {
        io::ErrorKind::AddrNotAvailable => "addr_not_available",
        io::ErrorKind::AddrInUse => "addr_in_use",
        io::ErrorKind::ConnectionRefused => "refused",
        io::ErrorKind::ConnectionReset => "reset",
        io::ErrorKind::TimedOut => "timeout",
        io::ErrorKind::PermissionDenied => "permission",
        _ => "other",
    }
}

#[cfg(unix)]
/// Creates a non-blocking socket bound to `source` (when given) and starts connecting it.
fn start_connect(addr: SocketAddr, source: Option<Ipv4Addr>) -> io::Result<Socket> {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
    socket.set_nonblocking(true)?;
    if let Some(ip) = source {
        socket.set_reuse_address(true)?;
        socket.bind(&SockAddr::from(SocketAddr::from((ip, 0))))?;
    }
    match socket.connect(&addr.into()) {
        Ok(()) => Ok(socket),
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => Ok(socket),
        Err(e) => Err(e),
    }
}

#[cfg(unix)]
/// `Some(Ok)` once connected, `Some(Err)` once failed, `None` while in progress.
fn connect_state(socket: &Socket) -> Option<io::Result<()>> {
    match socket.take_error() {
        Ok(Some(e)) | Err(e) => return Some(Err(e)),
        Ok(None) => {}
    }
    match socket.peer_addr() {
        Ok(_) => Some(Ok(())),
        Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => None,
        Err(e) => Some(Err(e)),
    }
}

#[cfg(unix)]
/// Sends one message on each sampled connection and waits (at most 5 s in all) for every echo;
/// returns (echoed correctly, failed).
fn check_sample(conns: &[Socket], sample: &[usize], round: u32) -> (usize, usize) {
    let mut pending: Vec<(usize, Vec<u8>, Vec<u8>)> = Vec::new();
    let mut failed = 0;
    for &i in sample {
        let msg = format!("ringport hold {round} {i}\n").into_bytes();
        match (&conns[i]).write(&msg) {
            Ok(n) if n == msg.len() => pending.push((i, msg, Vec::new())),
            _ => failed += 1,
        }
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut ok = 0;
    let mut buf = [0u8; 256];
    while !pending.is_empty() && Instant::now() < deadline {
        pending.retain_mut(|(i, want, got)| match (&conns[*i]).read(&mut buf) {
            Ok(0) => {
                failed += 1;
                false
            }
            Ok(n) => {
                got.extend_from_slice(&buf[..n]);
                if got.len() < want.len() {
                    return true;
                }
                if got == want {
                    ok += 1;
                } else {
                    failed += 1;
                }
                false
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => true,
            Err(_) => {
                failed += 1;
                false
            }
        });
        std::thread::sleep(Duration::from_millis(2));
    }
    (ok, failed + pending.len())
}

#[cfg(unix)]
/// `check` connections spread evenly over `open` (all of them when fewer).
fn sample_of(open: usize, check: usize) -> Vec<usize> {
    let n = check.min(open);
    (0..n).map(|k| k * open / n).collect()
}

#[cfg(unix)]
/// Says that step `step` is done with `established` connections open: `STEP ESTABLISHED LAST`
/// (LAST 1 when no step follows) in `path`, written aside and renamed, so a reader never sees
/// half of it.
fn announce_step(
    path: &std::path::Path,
    step: usize,
    established: usize,
    last: bool,
) -> io::Result<()> {
    let mut aside = path.as_os_str().to_owned();
    aside.push(".part");
    std::fs::write(&aside, format!("{step} {established} {}\n", u8::from(last)))?;
    std::fs::rename(&aside, path)
}

#[cfg(unix)]
fn main() {
    let args = parse_args().unwrap_or_else(|e| {
        eprintln!("hold: {e}");
        std::process::exit(2);
    });
    let (soft0, hard) = ringport_os::limits::nofile().unwrap_or((1024, 1024));
    if soft0 < hard {
        let _ = ringport_os::limits::set_nofile(hard, hard);
    }
    let (soft, _) = ringport_os::limits::nofile().unwrap_or((soft0, hard));

    let start = Instant::now();
    let mut conns: Vec<Socket> = Vec::with_capacity(args.count);
    let mut in_progress: VecDeque<(Socket, Instant)> = VecDeque::new();
    let mut failures: BTreeMap<&'static str, usize> = BTreeMap::new();
    let mut fail_run = 0usize;
    let mut started = 0usize;
    let mut stopped_by = "done";
    let mut next_source = 0usize;
    let mut last_progress = Instant::now();

    // Time spent stopped between steps, not opening.
    let mut paused = Duration::ZERO;
    // The last step's check of the sample, which is the check once opened.
    let mut checked: Option<(usize, usize)> = None;
    // The connections the sample is spread over: all of them, or the first step's.
    let mut sample_over: Option<usize> = None;
    for step in 1..=args.steps {
        let target = args.count * step / args.steps;
        while conns.len() + failures.values().sum::<usize>() < target {
            let mut progressed = false;
            // Start connects while under the in-flight bound, the rate and the count.
            let allowed_by_rate = args.rate.map_or(usize::MAX, |r| {
                (start.elapsed().as_secs_f64() * r) as usize + 1
            });
            while stopped_by == "done"
                && started < target
                && in_progress.len() < args.in_flight
                && started < allowed_by_rate
            {
                let source = (!args.sources.is_empty()).then(|| {
                    next_source = (next_source + 1) % args.sources.len();
                    args.sources[next_source]
                });
                started += 1;
                progressed = true;
                match start_connect(args.addr, source) {
                    Ok(s) => in_progress.push_back((s, Instant::now())),
                    Err(e) => {
                        let k = kind(&e);
                        *failures.entry(k).or_default() += 1;
                        fail_run += 1;
                        if k == "emfile" || k == "enfile" {
                            stopped_by = k;
                        }
                    }
                }
            }
            // Collect the connects that finished.
            let mut still = VecDeque::with_capacity(in_progress.len());
            while let Some((s, at)) = in_progress.pop_front() {
                match connect_state(&s) {
                    Some(Ok(())) => {
                        conns.push(s);
                        fail_run = 0;
                        progressed = true;
                    }
                    Some(Err(e)) => {
                        *failures.entry(kind(&e)).or_default() += 1;
                        fail_run += 1;
                        progressed = true;
                    }
                    None if at.elapsed() > args.connect_timeout => {
                        *failures.entry("timeout").or_default() += 1;
                        fail_run += 1;
                        progressed = true;
                    }
                    None => still.push_back((s, at)),
                }
            }
            in_progress = still;
            if fail_run >= 2000 && stopped_by == "done" {
                stopped_by = "failures";
            }
            if stopped_by != "done" {
                // Give up on what is still connecting: count it, stop.
                if in_progress.is_empty() || fail_run >= 2000 {
                    *failures.entry("abandoned").or_default() += in_progress.len();
                    in_progress.clear();
                    break;
                }
            }
            if progressed {
                last_progress = Instant::now();
            } else {
                std::thread::sleep(Duration::from_micros(
                    if last_progress.elapsed() > Duration::from_millis(50) {
                        5_000
                    } else {
                        200
                    },
                ));
            }
        }
        let last = step == args.steps || stopped_by != "done";
        if let Some(path) = args.step_file.as_ref().filter(|_| args.steps > 1) {
            // The same connections at every step: those of the first step.
            let over = *sample_over.get_or_insert(conns.len());
            let sample = sample_of(over, args.check);
            // The first step checks `--warm` rounds: what the first echoes cost the server
            // once (its pool's buffers, first touched round after round) is then in every
            // reading.
            for _ in 1..if step == 1 { args.warm } else { 1 } {
                check_sample(&conns, &sample, 1);
            }
            let r = check_sample(&conns, &sample, 1);
            if last {
                checked = Some(r);
            }
            let waited = Instant::now();
            if let Err(e) = announce_step(path, step, conns.len(), last) {
                eprintln!("hold: cannot write {}: {e}", path.display());
                std::process::exit(1);
            }
            eprintln!(
                "hold: step {step} of {} established={}",
                args.steps,
                conns.len()
            );
            while path.exists() && !args.stop_file.as_ref().is_some_and(|p| p.exists()) {
                std::thread::sleep(Duration::from_millis(20));
            }
            paused += waited.elapsed();
        }
        if last {
            break;
        }
    }
    let open_secs = (start.elapsed() - paused).as_secs_f64();
    let failed: usize = failures.values().sum();
    let fail_list = if failures.is_empty() {
        "none".to_string()
    } else {
        failures
            .iter()
            .map(|(k, v)| format!("{k}:{v}"))
            .collect::<Vec<_>>()
            .join(",")
    };
    eprintln!(
        "hold: opened established={} failed={failed} failures={fail_list} open_secs={open_secs:.2}",
        conns.len()
    );

    let sample = sample_of(sample_over.unwrap_or(conns.len()), args.check);
    let (ok1, bad1) = checked.unwrap_or_else(|| check_sample(&conns, &sample, 1));

    let hold_start = Instant::now();
    let hold_for = Duration::from_secs_f64(args.secs.max(0.0));
    while hold_start.elapsed() < hold_for {
        if args.stop_file.as_ref().is_some_and(|p| p.exists()) {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let held_secs = hold_start.elapsed().as_secs_f64();

    let (ok2, bad2) = check_sample(&conns, &sample, 2);
    // Which connections did the server close (or reset) while we held them?
    let (mut alive, mut closed, mut reset) = (0usize, 0usize, 0usize);
    let mut buf = [0u8; 64];
    for c in &conns {
        match (&*c).read(&mut buf) {
            Ok(0) => closed += 1,
            Ok(_) => alive += 1,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => alive += 1,
            Err(_) => reset += 1,
        }
    }
    println!(
        "target={} established={} failed={failed} failures={fail_list} stopped_by={stopped_by} \
         open_secs={open_secs:.2} rate_per_sec={:.0} held_secs={held_secs:.1} alive={alive} \
         closed_by_peer={closed} reset={reset} echo_ok_open={ok1} echo_fail_open={bad1} \
         echo_ok_end={ok2} echo_fail_end={bad2} nofile={soft} sources={}",
        args.count,
        conns.len(),
        conns.len() as f64 / open_secs.max(1e-9),
        args.sources.len().max(1),
    );
    let _ = io::stdout().flush();
}

/// The example raises Unix resource limits and uses Unix socket options: Linux only.
#[cfg(not(unix))]
fn main() {
    eprintln!("hold: Linux only (it holds connections with Unix resource limits)");
    std::process::exit(2);
}
