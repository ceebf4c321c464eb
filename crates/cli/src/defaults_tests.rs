//! The flags' defaults are the libraries' own: each subcommand given no flag builds exactly the
//! library's default configuration, the help shows the library's values for the defaults
//! applied after parsing, and every flag of seconds takes the same range.

use clap::{CommandFactory, Parser};
use ringport_server::ServeConfig;
use ringport_stress::config::{self, StressConfig};

use crate::{Cli, Command};

#[track_caller]
fn parse(args: &[&str]) -> Command {
    let mut argv = vec!["ringport"];
    argv.extend_from_slice(args);
    Cli::try_parse_from(argv)
        .unwrap_or_else(|e| panic!("{args:?}: {e}"))
        .command
}

/// The long help of `subcommand`, as `ringport SUBCOMMAND --help` prints it.
fn help(subcommand: &str) -> String {
    let mut cli = Cli::command();
    cli.build();
    cli.find_subcommand_mut(subcommand)
        .unwrap_or_else(|| panic!("no subcommand {subcommand}"))
        .render_long_help()
        .to_string()
}

#[test]
fn serve_without_flags_is_the_servers_default() {
    let Command::Serve(args) = parse(&["serve"]) else {
        panic!("not serve")
    };
    assert_eq!(
        format!("{:?}", args.config()),
        format!("{:?}", ServeConfig::default())
    );
}

#[test]
fn stress_without_flags_is_the_load_generators_default() {
    let Command::Stress(args) = parse(&["stress"]) else {
        panic!("not stress")
    };
    assert_eq!(args.config().unwrap(), StressConfig::default());
    // Where `send` and `stress` connect, and where `serve` listens, when nothing is given.
    assert_eq!(crate::addr::DEFAULT_HOST, StressConfig::default().host);
    assert_eq!(crate::addr::DEFAULT_PORT, ServeConfig::default().port);
}

#[cfg(unix)]
#[test]
fn bench_without_flags_is_the_benchmarks_default() {
    let Command::Bench(args) = parse(&["bench"]) else {
        panic!("not bench")
    };
    let exe = std::env::current_exe().unwrap();
    assert_eq!(
        args.config().unwrap(),
        ringport_bench::schedule::BenchConfig::new(exe)
    );
}

/// Defaults applied after parsing (an absent flag means something: ask, exempt loopback, keep
/// the preset's) are shown in the help from the library's values.
#[test]
fn the_help_shows_the_library_defaults() {
    let serve = help("serve");
    for want in [
        format!("[default: {}, loopback", ServeConfig::default().max_per_ip),
        format!(
            "reserve of {} + {} per worker; the threaded model at most {}]",
            ringport_server::config::FD_RESERVE_BASE,
            ringport_server::config::FD_RESERVE_PER_WORKER,
            ringport_server::threaded::DEFAULT_MAX
        ),
        format!("[default: {}]", ServeConfig::default().backlog),
    ] {
        assert!(
            serve.contains(&want),
            "serve --help lacks {want:?}:\n{serve}"
        );
    }
    let stress = help("stress");
    for want in [
        format!("[default: {}]", config::DEFAULT_CONNECTIONS),
        format!("[default: {} when --duration", config::DEFAULT_COUNT),
        format!("[default: {}]", config::DEFAULT_WINDOW),
        format!("(default {})", config::DEFAULT_STREAM_CHUNK),
        format!("[default: {}]", config::DEFAULT_TIMEOUT.as_secs_f64()),
    ] {
        assert!(
            stress.contains(&want),
            "stress --help lacks {want:?}:\n{stress}"
        );
    }
    #[cfg(unix)]
    {
        use ringport_bench::schedule;
        let bench = help("bench");
        for want in [
            "[default: 1,10,100,1000]".to_string(),
            format!("[default: {}]", schedule::DEFAULT_REPEAT),
        ] {
            assert!(
                bench.contains(&want),
                "bench --help lacks {want:?}:\n{bench}"
            );
        }
        assert_eq!(schedule::DEFAULT_CONNECTIONS, [1, 10, 100, 1000]);
    }
}

/// Issue 14: `parse_secs` was written three times with two limits (serve and bench refused
/// more than a day, stress took up to 1,000,000 s). One parser now, one range, everywhere.
#[test]
fn every_flag_of_seconds_takes_the_same_range() {
    let mut cases: Vec<Vec<&str>> = vec![
        vec!["serve", "--idle-timeout"],
        vec!["serve", "--write-timeout"],
        vec!["serve", "--drain-timeout"],
        vec!["serve", "--stats"],
        vec!["stress", "--duration"],
        vec!["stress", "--warmup"],
        vec!["stress", "--timeout"],
        vec!["send", "--timeout"],
    ];
    if cfg!(unix) {
        cases.extend([
            vec!["bench", "--duration"],
            vec!["bench", "--warmup"],
            vec!["bench", "--timeout"],
        ]);
    }
    for case in cases {
        let with = |value: &str| {
            let mut argv = vec!["ringport"];
            argv.extend_from_slice(&case);
            argv.push(value);
            if case[0] == "send" {
                argv.push("hi");
            }
            Cli::try_parse_from(argv)
        };
        assert!(with("90000").is_ok(), "{case:?} refuses 90000 s");
        let e = with("1000001").unwrap_err().to_string();
        assert!(
            e.contains("`1000001` is out of range (0 to 1000000 seconds)"),
            "{case:?}: {e}"
        );
        let e = with("soon").unwrap_err().to_string();
        assert!(
            e.contains("`soon` is not a number of seconds"),
            "{case:?}: {e}"
        );
    }
}
