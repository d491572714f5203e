//! The central's HTTP listener seen from outside, with real processes: the metrics during and
//! after a lottery, checked by `promtool`; `/status.json` against the agencies' own summaries;
//! readiness failing with the store; the status page rendered by a headless Chromium; and the
//! listener off unless asked for.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod common;

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    path::PathBuf,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use common::{agency, assert_opened_database, assert_success, fields_of, Central, PATIENCE};
use testkit::{datasets, reference};

/// A port free now on loopback, for `SERVER_HTTP_PORT` (0 there means off, not "any").
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A central for `agencies` agencies with its HTTP listener on; returns it and the listener's
/// address once the central says it listens there.
fn observed_central(agencies: u32, extra: &[(&str, &str)]) -> (Central, SocketAddr) {
    let port = free_port().to_string();
    let mut settings = vec![("SERVER_HTTP_PORT", port.as_str())];
    settings.extend_from_slice(extra);
    let central = Central::start(agencies, &settings);
    let line = central.process.wait_for(&["action: http_listen | result: success"], PATIENCE);
    let line = line.unwrap_or_else(|| panic!("no HTTP listener:\n{}", central.process.transcript()));
    let addr = testkit::process::field(&line, "address").unwrap().parse().unwrap();
    (central, addr)
}

/// `GET path`: the status code and the body.
fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect_timeout(&addr, PATIENCE).unwrap();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    write!(stream, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, body.to_owned())
}

/// Every sample of the metrics page, as `name{labels}` to value.
fn samples(page: &str) -> std::collections::BTreeMap<String, f64> {
    page.lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .map(|line| {
            let (name, value) = line.rsplit_once(' ').unwrap();
            (name.to_owned(), value.parse().unwrap())
        })
        .collect()
}

/// `promtool check metrics` on `page`: no error and no warning.
fn promtool_accepts(page: &str) {
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian's prometheus package) on PATH");
    promtool.stdin.take().unwrap().write_all(page.as_bytes()).unwrap();
    let out = promtool.wait_with_output().unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && said.trim().is_empty(), "promtool: {said}\n{page}");
}

#[test]
fn five_agencies_are_seen_in_the_metrics_the_status_and_the_page() {
    let (mut central, http) = observed_central(5, &[("SERVER_WINNER_DELAY_MS", "1")]);
    let sizes = [1_800, 1_500, 1_200, 700, 99];
    let rows: Vec<_> = sizes.iter().zip(1u64..).map(|(&n, seed)| datasets::generate(seed + 40, n)).collect();
    let mut clients: Vec<_> = (1u32..)
        .zip(&rows)
        .map(|(id, rows)| agency(&central, id, &central.dataset(id, rows), &[("CLI_BATCH_MAX_AMOUNT", "50")]))
        .collect();

    // Scraped while the agencies load: counters never go down.
    let mut last = samples(&get(http, "/metrics").1);
    let mut scrapes = 1;
    // Paced by the agencies themselves: each round waits up to 50 ms for one still running.
    while let Some(running) =
        clients.iter_mut().find_map(|c| c.wait_exit(Duration::ZERO).is_none().then_some(c))
    {
        running.wait_exit(Duration::from_millis(50));
        let now = samples(&get(http, "/metrics").1);
        for (name, value) in now.iter().filter(|(name, _)| name.contains("_total")) {
            assert!(*value >= last[name], "{name} went down: {} then {value}", last[name]);
        }
        last = now;
        scrapes += 1;
        assert!(scrapes < 100_000, "the agencies never end");
    }
    for client in &mut clients {
        assert_success(client);
    }
    assert!(scrapes > 2, "scraped mid-run: {scrapes} scrapes");

    let page = get(http, "/metrics").1;
    promtool_accepts(&page);
    let end = samples(&page);
    let mut total_winners = 0;
    for (id, rows) in (1u32..).zip(&rows) {
        let winners = reference::winners(rows).len() as f64;
        total_winners += winners as u64;
        assert_eq!(end[&format!("lottery_bets_stored_total{{agency=\"{id}\"}}")], rows.len() as f64);
        assert_eq!(end[&format!("lottery_winners_stored_total{{agency=\"{id}\"}}")], winners);
    }
    let batches: usize = sizes.iter().map(|n| n.div_ceil(50)).sum();
    assert_eq!(end["lottery_batches_total{outcome=\"stored\"}"], batches as f64);
    assert_eq!(end["lottery_agencies_expected"], 5.0);
    assert_eq!(end["lottery_agencies_done"], 5.0);
    assert_eq!(end["lottery_complete"], 1.0);
    assert!(end["lottery_storage_sync_seconds_count"] >= 1.0);

    // /status.json says what each agency's own summary says.
    let (status, body) = get(http, "/status.json");
    assert_eq!(status, 200);
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["agencies_expected"], 5);
    assert_eq!(json["agencies_done"], 5);
    assert_eq!(json["complete"], true);
    assert_eq!(json["total_winners"], total_winners);
    for (id, client) in (1u32..).zip(&clients) {
        let summary = fields_of(client, &["action: agency_summary | result: success"]);
        let listed = &json["agencies"][id as usize - 1];
        assert_eq!(listed["agency"], id);
        assert_eq!(listed["bets"].to_string(), summary["bets"], "agency {id}");
        assert_eq!(listed["winners"].to_string(), summary["winners"], "agency {id}");
        assert_eq!(listed["done"], true);
    }

    // The page, as a browser renders it: every agency's numbers and the total.
    let dom = chromium(http, "status-page.png");
    for (id, rows) in (1u32..).zip(&rows) {
        let bets = group(rows.len() as u64);
        let winners = group(reference::winners(rows).len() as u64);
        let row = format!("<tr id=\"agency-{id}\"><td>{id}</td><td>{bets}</td><td>{winners}</td><td class=\"done\">done</td></tr>");
        assert!(dom.contains(&row), "{row} missing from the rendered page:\n{dom}");
    }
    assert!(dom.contains(&format!("Complete: {} winners", group(total_winners))), "{dom}");
    assert_eq!(get(http, "/healthz").0, 200);
    assert_eq!(get(http, "/readyz").0, 200);
    central.stop();
}

/// 12345 as the page writes it (en-US grouping).
fn group(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The status page rendered by headless Chromium once its script has filled it; a screenshot
/// is kept in target/observability/ as the test's artifact.
fn chromium(http: SocketAddr, screenshot: &str) -> String {
    let browser = ["chromium", "chromium-browser"]
        .into_iter()
        .find(|b| Command::new(b).arg("--version").output().is_ok_and(|o| o.status.success()))
        .expect("chromium (Debian's package) on PATH");
    let url = format!("http://{http}/");
    let profile = tempfile::tempdir().unwrap();
    let base = |command: &mut Command| {
        command
            .args(["--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=3000"])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .stderr(Stdio::null());
    };
    let artifacts = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/observability");
    std::fs::create_dir_all(&artifacts).unwrap();
    let mut shot = Command::new(browser);
    base(&mut shot);
    let shot = shot
        .arg(format!("--screenshot={}", artifacts.join(screenshot).display()))
        .arg("--window-size=900,520")
        .arg(&url)
        .output()
        .unwrap();
    assert!(shot.status.success(), "chromium --screenshot failed");
    let mut dump = Command::new(browser);
    base(&mut dump);
    let out = dump.arg("--dump-dom").arg(&url).output().unwrap();
    assert!(out.status.success(), "chromium --dump-dom failed");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn readiness_fails_when_the_journal_cannot_be_written_and_health_does_not() {
    let storage = tempfile::tempdir().unwrap();
    let path = storage.path().join("draw").join("winners.csv");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let path = path.display().to_string();
    let (mut central, http) = observed_central(1, &[("SERVER_STORAGE_PATH", path.as_str())]);
    assert_eq!(get(http, "/readyz").0, 200);
    // The journal's folder removed: permissions do not bite root, a missing folder does.
    std::fs::remove_dir_all(storage.path().join("draw")).unwrap();
    let started = Instant::now();
    let (status, body) = get(http, "/readyz");
    assert_eq!(status, 503, "{body}");
    assert!(started.elapsed() < Duration::from_secs(2), "readiness answers within a second or so");
    assert_eq!(get(http, "/healthz").0, 200);
    // The container's probe says the same.
    let probe = testkit::central::server_command(&[])
        .arg("healthcheck")
        .envs([("SERVER_IP", "127.0.0.1".to_owned()), ("SERVER_HTTP_PORT", http.port().to_string())])
        .output()
        .unwrap();
    assert!(!probe.status.success(), "{}", String::from_utf8_lossy(&probe.stdout));
    central.stop();
}

#[test]
fn readiness_fails_when_the_database_stops_and_health_does_not() {
    let Some(mut cluster) = testkit::postgres::Cluster::start("readyz_database") else { return };
    let url = cluster.create_database("readyz_database");
    let (mut central, http) = observed_central(1, &[("SERVER_DATABASE_URL", url.as_str())]);
    assert_opened_database(&central);
    let (status, body) = get(http, "/readyz");
    assert_eq!(status, 200, "{body}");
    cluster.stop();
    let started = Instant::now();
    let (status, body) = get(http, "/readyz");
    assert_eq!(status, 503, "{body}");
    assert!(started.elapsed() < Duration::from_secs(2), "readiness took {:?}", started.elapsed());
    assert_eq!(get(http, "/healthz").0, 200, "alive, though not ready");
    // The database back: ready again, without a restart of the central.
    cluster.restart();
    let deadline = Instant::now() + PATIENCE;
    while get(http, "/readyz").0 != 200 {
        assert!(Instant::now() < deadline, "not ready again {PATIENCE:?} after the database came back");
        std::thread::sleep(Duration::from_millis(100));
    }
    central.stop();
}

#[test]
fn the_listener_is_off_by_default_and_stops_with_the_central() {
    let mut central = Central::start(1, &[]);
    assert!(central.process.lines().iter().all(|line| !line.contains("http_listen")));
    central.stop();
    assert!(central.process.lines().iter().all(|line| !line.contains("http_listen")));

    let (mut central, http) = observed_central(1, &[]);
    // Clients holding HTTP connections open: one silent, one halfway through its request
    // head, one that asked to keep its connection alive (answered, then closed by us).
    let silent = TcpStream::connect(http).unwrap();
    let mut halfway = TcpStream::connect(http).unwrap();
    halfway.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n").unwrap();
    let mut kept = TcpStream::connect(http).unwrap();
    kept.set_read_timeout(Some(PATIENCE)).unwrap();
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: keep-alive\r\n\r\n").unwrap();
    let mut answer = String::new();
    kept.read_to_string(&mut answer).unwrap();
    assert!(
        answer.starts_with("HTTP/1.1 200 OK\r\n") && answer.contains("Connection: close\r\n"),
        "{answer}"
    );
    let started = Instant::now();
    central.stop();
    assert!(started.elapsed() < Duration::from_secs(1), "stopped in {:?}", started.elapsed());
    for mut cut in [&silent, &halfway] {
        cut.set_read_timeout(Some(PATIENCE)).unwrap();
        let read = cut.read(&mut [0u8; 64]);
        let closed = match &read {
            Ok(n) => *n == 0,
            Err(e) => !matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut),
        };
        assert!(closed, "the stop closes every HTTP connection: {read:?}");
    }
    assert!(central.process.lines().iter().any(|line| line.contains("action: http_stop | result: success")));
    assert!(
        TcpStream::connect_timeout(&http, Duration::from_millis(500)).is_err(),
        "nothing listens after the stop"
    );
}
