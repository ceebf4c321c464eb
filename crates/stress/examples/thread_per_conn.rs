//! A thread-per-connection echo load generator, the design of rust_echo_bench and of the
//! article's client: the baseline `ringport stress` is measured against (see
//! `benches/client-cost.sh`). Not part of ringport; a measuring stick.
//!
//! `thread_per_conn ADDR CONNS SIZE SECS [WARMUP]`: CONNS threads, each with one blocking
//! connection sending SIZE-byte messages and reading each echo back whole (checked) before the
//! next. Prints one line of `key=value`: round trips per second over the measured window and the
//! process's CPU use over it (1.0 = one core busy).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// utime + stime of this process, in seconds (assumes the usual 100 ticks per second).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(") ").map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = fields.get(11..13).map_or(0.0, |f| {
        f.iter().filter_map(|v| v.parse::<f64>().ok()).sum()
    });
    ticks / 100.0
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 4 {
        eprintln!("usage: thread_per_conn ADDR CONNS SIZE SECS [WARMUP]");
        std::process::exit(2);
    }
    let addr = args[0].clone();
    let conns: usize = args[1].parse().expect("CONNS");
    let size: usize = args[2].parse().expect("SIZE");
    let secs: f64 = args[3].parse().expect("SECS");
    let warmup: f64 = args.get(4).map_or(1.0, |w| w.parse().expect("WARMUP"));
    let counting = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = (0..conns)
        .map(|c| {
            let (addr, counting, stop, count, errors) = (
                addr.clone(),
                counting.clone(),
                stop.clone(),
                count.clone(),
                errors.clone(),
            );
            std::thread::spawn(move || {
                let mut s = TcpStream::connect(&addr).expect("connect");
                s.set_nodelay(true).unwrap();
                let mut msg: Vec<u8> = (0..size).map(|i| (i * 31 + c) as u8).collect();
                let mut back = vec![0u8; size];
                let mut seq = 0u8;
                while !stop.load(Ordering::Relaxed) {
                    seq = seq.wrapping_add(1);
                    msg[0] = seq;
                    if s.write_all(&msg).is_err() || s.read_exact(&mut back).is_err() || back != msg
                    {
                        errors.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                    if counting.load(Ordering::Relaxed) {
                        count.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs_f64(warmup));
    let cpu0 = cpu_seconds();
    let t0 = Instant::now();
    counting.store(true, Ordering::SeqCst);
    std::thread::sleep(Duration::from_secs_f64(secs));
    counting.store(false, Ordering::SeqCst);
    let elapsed = t0.elapsed().as_secs_f64();
    let cpu = (cpu_seconds() - cpu0) / elapsed;
    stop.store(true, Ordering::SeqCst);
    let rt = count.load(Ordering::SeqCst);
    for t in threads {
        let _ = t.join();
    }
    println!(
        "rt_per_s={:.0} load_cpu={cpu:.2} errors={} conns={conns} size={size}",
        rt as f64 / elapsed,
        errors.load(Ordering::SeqCst)
    );
}
