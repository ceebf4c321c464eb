//! Manual measurement helper (not a test): `loopback serve PORT` runs the real completion-port
//! server with one worker until killed; `loopback stress PORT CONNS SECS SIZE [PIPELINE]
//! [THREADS] [BACKEND]` runs the stress engine against 127.0.0.1:PORT and prints the report. Pin each to
//! its own core with `taskset` to compare client cost per core with other load generators.

use std::time::Duration;

use ringport_stress::config::StressConfig;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let num = |i: usize, default: u64| -> u64 {
        args.get(i)
            .map(|s| s.parse().expect("a number"))
            .unwrap_or(default)
    };
    match args.first().map(String::as_str) {
        Some("serve") => {
            let shutdown = ringport_server::Shutdown::new();
            let running = ringport_server::start(
                &ringport_server::ServeConfig {
                    port: num(1, 3333) as u16,
                    workers: 1,
                    ..ringport_server::ServeConfig::default()
                },
                shutdown,
            )
            .expect("server");
            println!("listening on {}", running.local_addr());
            let _ = running.wait();
        }
        Some("stress") => {
            let config = StressConfig {
                port: num(1, 3333) as u16,
                connections: num(2, 50) as usize,
                duration: Some(Duration::from_secs(num(3, 5))),
                size: Some(num(4, 64) as usize),
                pipeline: num(5, 1) as usize,
                threads: num(6, 1) as usize,
                warmup: Duration::from_secs(1),
                backend: args
                    .get(7)
                    .map(|b| b.parse().expect("auto, uring or epoll"))
                    .unwrap_or_default(),
                ..StressConfig::default()
            };
            let outcome = ringport_stress::engine::run(&config).expect("run");
            print!("{}", outcome.report.render());
            std::process::exit(outcome.report.exit_code());
        }
        _ => eprintln!("usage: loopback serve PORT | loopback stress PORT CONNS SECS SIZE [PIPELINE] [THREADS] [BACKEND]"),
    }
}
