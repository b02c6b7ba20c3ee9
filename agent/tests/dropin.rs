//! nectr-agent as a drop-in for `java -jar agent.jar` and the inbound-agent image: no silent
//! hangs against controllers that accept and never answer (one fake server per step of
//! connecting, all on loopback), the agent.jar flag combinations the image's entry script
//! produces (run from the image definition's own ENV and ENTRYPOINT, against the controller
//! simulator), `-direct` without `-url`, `-tunnel`, and a controller that goes silent after
//! the agent is online.

mod support;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use support::*;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;
const LONG: Duration = Duration::from_secs(60);

/// Serves each connection on its own thread with `handler`, which may keep the socket
/// open for ever (the test process ends it).
fn fake_server(handler: impl Fn(TcpStream) + Send + Sync + 'static) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let handler = Arc::new(handler);
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            let h = handler.clone();
            std::thread::spawn(move || h(s));
        }
    });
    port
}

/// Keeps a connection open and says nothing.
fn hold(s: TcpStream) {
    loop {
        std::thread::park();
        let _ = &s;
    }
}

/// A listener that accepts and never answers (a half-dead controller or load balancer).
fn silent_server() -> u16 {
    fake_server(hold)
}

/// A listener whose accept queue is full: the kernel drops new SYNs, so connecting hangs.
fn unreachable_port() -> (u16, Vec<socket2::Socket>, Vec<TcpStream>) {
    use socket2::{Domain, Socket, Type};
    let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    s.bind(
        &"127.0.0.1:0"
            .parse::<std::net::SocketAddr>()
            .unwrap()
            .into(),
    )
    .unwrap();
    s.listen(0).unwrap();
    let addr = s.local_addr().unwrap().as_socket().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..4 {
        if let Ok(c) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
            fillers.push(c);
        }
    }
    (addr.port(), vec![s], fillers)
}

fn read_n(s: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut b = vec![0; n];
    s.read_exact(&mut b).unwrap();
    b
}

/// The JNLP4 preamble and ACK an agent sends first (remoting-protocol.md §2.2).
const HELLO: &[u8] = b"\x00\x16Protocol:JNLP4-connect\x00\x03ACK";

/// A self-signed certificate and key made by `openssl`, for a fake JNLP4 TLS port, and the
/// certificate's key as `-instanceIdentity` wants it.
fn fake_identity(dir: &Path) -> (Arc<rustls::ServerConfig>, String) {
    use rustls_pki_types::pem::PemObject;
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let st = std::process::Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=fake",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(std::process::Stdio::null())
        .status()
        .expect("run openssl (scripts/test installs it)");
    assert!(st.success());
    let certs: Vec<_> = rustls_pki_types::CertificateDer::pem_file_iter(&cert)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let spki = nectr_agent::transport::jnlp4::certificate_spki(&certs[0])
        .unwrap()
        .to_vec();
    let key = rustls_pki_types::PrivateKeyDer::from_pem_file(&key).unwrap();
    let cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    (Arc::new(cfg), B64.encode(spki))
}

fn msg(m: &[u8]) -> Vec<u8> {
    let mut b = (m.len() as u16).to_be_bytes().to_vec();
    b.extend_from_slice(m);
    b
}

/// How far a fake JNLP4 controller gets before it goes silent.
#[derive(Clone, Copy)]
enum SilentAfter {
    /// ACK sent, then nothing (the TLS handshake hangs).
    Ack,
    /// TLS done, then nothing (the connection headers hang).
    Tls,
    /// Headers and OK sent, then nothing (the capability exchange hangs).
    Headers,
    /// Capability sent, then no command (the channel never starts).
    Capability,
}

fn fake_jnlp4(tls: Arc<rustls::ServerConfig>, upto: SilentAfter) -> u16 {
    fake_server(move |mut s| {
        assert_eq!(read_n(&mut s, HELLO.len()), HELLO);
        s.write_all(b"\x00\x03ACK").unwrap();
        if let SilentAfter::Ack = upto {
            return hold(s);
        }
        let conn = rustls::ServerConnection::new(tls.clone()).unwrap();
        let mut t = rustls::StreamOwned::new(conn, s);
        while t.conn.is_handshaking() {
            if t.conn.complete_io(&mut t.sock).is_err() {
                return;
            }
        }
        if let SilentAfter::Tls = upto {
            return hold(t.sock);
        }
        t.write_all(&msg(br#"{"JnlpAgentProtocol.cookie":"00ff"}"#))
            .unwrap();
        t.write_all(&msg(b"OK")).unwrap();
        t.flush().unwrap();
        if let SilentAfter::Headers = upto {
            return hold(t.sock);
        }
        let cap =
            b"rO0ABXNyABpodWRzb24ucmVtb3RpbmcuQ2FwYWJpbGl0eQAAAAAAAAABAgABSgAEbWFza3hwAAAAAAAAAf4=";
        t.write_all(&msg(cap)).unwrap();
        t.flush().unwrap();
        hold(t.sock)
    })
}

/// Completes the WebSocket upgrade, then sends nothing.
fn fake_websocket() -> u16 {
    use sha1::Digest;
    fake_server(|mut s| {
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            head.extend(read_n(&mut s, 1));
        }
        let head = String::from_utf8_lossy(&head).into_owned();
        let key = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("Sec-WebSocket-Key")
                    .then(|| v.trim().to_string())
            })
            .unwrap();
        let accept = B64.encode(sha1::Sha1::digest(format!(
            "{key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
        )));
        write!(s, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n").unwrap();
        hold(s)
    })
}

/// Runs the agent with `-noReconnect --connect-timeout 1` and checks that it exits with
/// status 1 and a line naming the step and the address.
fn times_out(args: &[&str], env: &[(&str, &str)], want: &str) {
    let dir = scratch("dropin-timeout");
    let mut cmd = agent_command();
    cmd.args([
        "-name",
        "n1",
        "-secret",
        "s",
        "-noReconnect",
        "--connect-timeout",
        "1",
    ])
    .args(args)
    .envs(env.iter().copied());
    let agent = AgentProc::spawn(cmd, &dir);
    let (code, err) = agent.wait_exit(LONG);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains(want), "expected {want:?} in:\n{err}");
    assert!(
        err.contains("no answer within 1s") || err.contains("within 1s"),
        "{err}"
    );
}

#[test]
fn a_silent_websocket_upgrade_times_out_with_its_address() {
    let p = silent_server();
    times_out(
        &["-url", &format!("http://127.0.0.1:{p}/"), "-webSocket"],
        &[],
        &format!("WebSocket upgrade at ws://127.0.0.1:{p}/wsagents/: no answer within 1s"),
    );
}

#[test]
fn a_silent_discovery_times_out_with_its_address() {
    let p = silent_server();
    times_out(
        &["-url", &format!("http://127.0.0.1:{p}/")],
        &[],
        &format!("discovery (GET http://127.0.0.1:{p}/tcpSlaveAgentListener/) at 127.0.0.1:{p}: no answer"),
    );
}

#[test]
fn a_tcp_connect_that_never_completes_times_out() {
    let (p, _listener, _fillers) = unreachable_port();
    let key = fake_identity(&scratch("dropin-key")).1;
    times_out(
        &[
            "-direct",
            &format!("127.0.0.1:{p}"),
            "-instanceIdentity",
            &key,
        ],
        &[],
        &format!("TCP connect to 127.0.0.1:{p}: no answer"),
    );
}

#[test]
fn a_silent_https_endpoint_times_out_in_the_tls_handshake() {
    let p = silent_server();
    times_out(
        &["-url", &format!("https://127.0.0.1:{p}/"), "-webSocket"],
        &[],
        &format!("TLS handshake with 127.0.0.1:{p}: no answer"),
    );
}

#[test]
fn a_silent_proxy_times_out_in_connect() {
    let p = silent_server();
    times_out(
        &["-url", "https://127.0.0.1:9/", "-webSocket"],
        &[("https_proxy", &format!("http://127.0.0.1:{p}"))],
        &format!("HTTP CONNECT 127.0.0.1:9 through the proxy 127.0.0.1:{p}: no answer"),
    );
}

#[test]
fn every_jnlp4_handshake_step_has_a_bound() {
    let dir = scratch("dropin-jnlp4");
    let (tls, key) = fake_identity(&dir);
    let silent = silent_server();
    let cases = [
        (silent, "JNLP4 preamble and ACK with"),
        (
            fake_jnlp4(tls.clone(), SilentAfter::Ack),
            "JNLP4 TLS handshake with",
        ),
        (
            fake_jnlp4(tls.clone(), SilentAfter::Tls),
            "JNLP4 connection headers with",
        ),
        (
            fake_jnlp4(tls.clone(), SilentAfter::Headers),
            "JNLP4 capability exchange with",
        ),
    ];
    for (port, step) in cases {
        times_out(
            &[
                "-direct",
                &format!("127.0.0.1:{port}"),
                "-instanceIdentity",
                &key,
            ],
            &[],
            &format!("{step} 127.0.0.1:{port}: no answer within 1s"),
        );
    }
    // Handshake complete, then no command: the channel never starts.
    let p = fake_jnlp4(tls, SilentAfter::Capability);
    times_out(
        &[
            "-direct",
            &format!("127.0.0.1:{p}"),
            "-instanceIdentity",
            &key,
        ],
        &[],
        "the controller sent no command within 1s of connecting",
    );
}

#[test]
fn a_websocket_that_never_sends_a_command_is_dropped() {
    let p = fake_websocket();
    times_out(
        &["-url", &format!("http://127.0.0.1:{p}/"), "-webSocket"],
        &[],
        "the controller sent no command within 1s of connecting",
    );
}

#[test]
fn without_no_reconnect_a_silent_controller_gets_bounded_retries() {
    let dir = scratch("dropin-retry");
    let p = silent_server();
    let mut cmd = agent_command();
    cmd.args(["-url", &format!("http://127.0.0.1:{p}/"), "-webSocket"])
        .args(["-name", "n1", "-secret", "s", "--connect-timeout", "1"]);
    let mut agent = AgentProc::spawn(cmd, &dir);
    let log = agent.wait_log("; retrying in ", 2, LONG);
    assert!(
        log.contains("no answer within 1s (--connect-timeout); retrying in"),
        "{log}"
    );
}

#[test]
fn no_reconnect_after_gives_up() {
    let dir = scratch("dropin-give-up");
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut cmd = agent_command();
    cmd.args(["-url", &format!("http://127.0.0.1:{closed}/")])
        .args(["-name", "n1", "-secret", "s", "-noReconnectAfter", "2s"]);
    let (code, err) = AgentProc::spawn(cmd, &dir).wait_exit(LONG);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("giving up after 2s without a connection (-noReconnectAfter)"),
        "{err}"
    );
    assert!(err.contains("retrying in"), "it retried first: {err}");
}

/// A TCP forwarder on loopback standing for a load balancer: counts the connections it
/// carried to `target`.
fn tunnel_to(target: u16) -> (u16, Arc<AtomicUsize>) {
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    let port = fake_server(move |inbound| {
        c.fetch_add(1, Ordering::SeqCst);
        let outbound = TcpStream::connect(("127.0.0.1", target)).unwrap();
        let (mut a, mut b) = (inbound.try_clone().unwrap(), outbound.try_clone().unwrap());
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut a, &mut b);
            let _ = b.shutdown(std::net::Shutdown::Write);
        });
        let (mut a, mut b) = (outbound, inbound);
        let _ = std::io::copy(&mut a, &mut b);
        let _ = b.shutdown(std::net::Shutdown::Write);
    });
    (port, count)
}

/// The inbound-agent image definition: its ENV, WORKDIR, USER and ENTRYPOINT.
struct Image {
    env: Vec<(String, String)>,
    entrypoint: Vec<String>,
}

fn image() -> Image {
    let text = std::fs::read_to_string(repo_root().join("agent/dist/Containerfile")).unwrap();
    // The final stage only.
    let last = text.rsplit("\nFROM ").next().unwrap();
    assert!(
        last.starts_with("scratch"),
        "the image is built FROM scratch"
    );
    let mut img = Image {
        env: Vec::new(),
        entrypoint: Vec::new(),
    };
    for line in last.lines() {
        if let Some(rest) = line.strip_prefix("ENV ") {
            for pair in rest.split_whitespace() {
                let (k, v) = pair.split_once('=').expect("ENV K=V");
                img.env.push((k.into(), v.into()));
            }
        } else if let Some(rest) = line.strip_prefix("ENTRYPOINT ") {
            img.entrypoint = serde_json::from_str(rest).expect("ENTRYPOINT in exec form");
        }
    }
    assert_eq!(img.entrypoint, ["/usr/local/bin/nectr-agent"]);
    img
}

/// `docker run [-e K=V]... IMAGE [ARGS]`, without a container: the image's ENTRYPOINT (this
/// build's binary stands for /usr/local/bin/nectr-agent) with the image's ENV, the `-e`
/// variables and the arguments, in a directory standing for its WORKDIR.
fn docker_run(
    img: &Image,
    env: &[(&str, &str)],
    args: &[&str],
    home: &Path,
) -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_nectr-agent"));
    cmd.env_clear()
        .envs(img.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .envs(env.iter().copied())
        .args(args)
        .current_dir(home);
    cmd
}

/// Starts `cmd`, waits for the simulator to see it online over `transport`, stops it and
/// waits for the simulator to see it go.
fn goes_online(
    sim: &mut Simulator,
    cmd: std::process::Command,
    dir: &Path,
    transport: &str,
) -> String {
    let agent = AgentProc::spawn(cmd, dir);
    let c = sim.wait_for("connected", LONG);
    assert_eq!(c["transport"], transport, "{}", agent.stderr());
    sim.wait_for("online", LONG);
    let log = agent.stderr();
    drop(agent);
    sim.wait_for("disconnected", LONG);
    log
}

#[test]
fn direct_without_url_goes_online_as_agent_jar_does() {
    // Issue 8, item 7: exactly the command line that used to fail with "no controller URL".
    let mut sim = Simulator::start(&[]);
    let key = sim.identity();
    sim.wait_for("http", LONG); // the test's own request for the key
    let mark = sim.seen.len();
    let dir = scratch("dropin-direct");
    let mut cmd = agent_command();
    cmd.args(["-direct", &format!("127.0.0.1:{}", sim.jnlp_port)])
        .args(["-instanceIdentity", &key, "-protocols", "JNLP4-connect"])
        .args(["-name", "n1", "-secret", SIM_SECRET]);
    let log = goes_online(&mut sim, cmd, &dir, "jnlp4");
    assert!(log.contains("(JNLP4-connect, -direct)"), "{log}");
    // No HTTP request reached the controller: -direct skips discovery.
    assert!(
        !sim.seen[mark..].iter().any(|e| e["event"] == "http"),
        "{:#?}",
        &sim.seen[mark..]
    );
}

#[test]
fn a_tunnel_carries_the_agent_port_connection() {
    let mut sim = Simulator::start(&[]);
    let dir = scratch("dropin-tunnel");
    let (tport, carried) = tunnel_to(sim.jnlp_port);
    for tunnel in [format!("127.0.0.1:{tport}"), format!(":{tport}")] {
        let before = carried.load(Ordering::SeqCst);
        let mut cmd = agent_command();
        cmd.args([
            "-url", &sim.url, "-tunnel", &tunnel, "-name", "n1", "-secret", SIM_SECRET,
        ]);
        goes_online(&mut sim, cmd, &dir, "jnlp4");
        assert_eq!(
            carried.load(Ordering::SeqCst),
            before + 1,
            "-tunnel {tunnel}"
        );
    }
    // HOST: keeps the discovered port.
    let mut cmd = agent_command();
    cmd.args([
        "-url",
        &sim.url,
        "-tunnel",
        "127.0.0.1:",
        "-name",
        "n1",
        "-secret",
        SIM_SECRET,
    ]);
    goes_online(&mut sim, cmd, &dir, "jnlp4");
}

/// What, the variables (`-e`), the arguments and the transport the simulator must see.
type Case<'a> = (&'a str, Vec<(&'a str, String)>, Vec<&'a str>, &'a str);
/// The variables, the arguments and what the refusal must say.
type Refusal<'a> = (Vec<(&'a str, &'a str)>, Vec<&'a str>, &'a str);

#[test]
fn the_image_entry_contract_holds_outside_a_container() {
    // Each combination the inbound-agent image's jenkins-agent script can produce from its
    // variables and arguments, run as the image runs nectr-agent.
    let img = image();
    let mut sim = Simulator::start(&[]);
    let key = sim.identity();
    let (tport, carried) = tunnel_to(sim.jnlp_port);
    let home = scratch("dropin-image");
    let url = sim.url.clone();
    let direct = format!("127.0.0.1:{}", sim.jnlp_port);
    let tunnel = format!("127.0.0.1:{tport}");
    let workdir = home.join("agent");
    let workdir_s = workdir.to_str().unwrap().to_string();
    let named = [("JENKINS_SECRET", SIM_SECRET), ("JENKINS_AGENT_NAME", "n1")];
    let with = |extra: &[(&'static str, &str)]| {
        let mut v: Vec<(&str, String)> = named.iter().map(|(k, v)| (*k, v.to_string())).collect();
        v.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
        v
    };
    let online: Vec<Case> = vec![
        (
            "URL, SECRET, NAME",
            with(&[("JENKINS_URL", &url)]),
            vec![],
            "jnlp4",
        ),
        (
            "+ WEB_SOCKET",
            with(&[("JENKINS_URL", &url), ("JENKINS_WEB_SOCKET", "true")]),
            vec![],
            "websocket",
        ),
        (
            "+ WORKDIR",
            with(&[("JENKINS_URL", &url), ("JENKINS_AGENT_WORKDIR", &workdir_s)]),
            vec![],
            "jnlp4",
        ),
        (
            "+ TUNNEL",
            with(&[("JENKINS_URL", &url), ("JENKINS_TUNNEL", &tunnel)]),
            vec![],
            "jnlp4",
        ),
        (
            "DIRECT + INSTANCE_IDENTITY + PROTOCOLS",
            with(&[
                ("JENKINS_DIRECT_CONNECTION", &direct),
                ("JENKINS_INSTANCE_IDENTITY", &key),
                ("JENKINS_PROTOCOLS", "JNLP4-connect"),
            ]),
            vec![],
            "jnlp4",
        ),
        (
            "DIRECT + INSTANCE_IDENTITY",
            with(&[
                ("JENKINS_DIRECT_CONNECTION", &direct),
                ("JENKINS_INSTANCE_IDENTITY", &key),
            ]),
            vec![],
            "jnlp4",
        ),
        (
            "JENKINS_NAME",
            vec![
                ("JENKINS_URL", url.clone()),
                ("JENKINS_SECRET", SIM_SECRET.into()),
                ("JENKINS_NAME", "n1".into()),
                ("JENKINS_AGENT_NAME", "other".into()),
            ],
            vec![],
            "jnlp4",
        ),
        (
            "REMOTING_OPTS",
            with(&[
                ("JENKINS_URL", &url),
                (
                    "REMOTING_OPTS",
                    "-webSocket -webSocketHeader 'X-Farm=build farm 1'",
                ),
            ]),
            vec![],
            "websocket",
        ),
        (
            "docker run IMAGE -url URL SECRET NAME",
            vec![],
            vec!["-url", &url, SIM_SECRET, "n1"],
            "jnlp4",
        ),
        (
            "docker run IMAGE -webSocket with the variables",
            with(&[("JENKINS_URL", &url)]),
            vec!["-webSocket"],
            "websocket",
        ),
    ];
    for (what, env, args, transport) in &online {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let log = goes_online(
            &mut sim,
            docker_run(&img, &env, args, &home),
            &home,
            transport,
        );
        assert!(!log.contains("ERROR"), "{what}: {log}");
    }
    assert_eq!(carried.load(Ordering::SeqCst), 1, "JENKINS_TUNNEL was used");
    assert!(
        workdir.join("remoting/logs/nectr-agent.log").is_file(),
        "JENKINS_AGENT_WORKDIR was used"
    );
    assert!(
        !home.join("remoting").exists(),
        "nothing written outside the work directory"
    );

    // The combinations agent.jar refuses are refused, before connecting, with status 2.
    let refused: Vec<Refusal> = vec![
        (
            vec![
                ("JENKINS_URL", &url),
                ("JENKINS_WEB_SOCKET", "true"),
                ("JENKINS_TUNNEL", &tunnel),
            ],
            vec![],
            "-tunnel",
        ),
        (
            vec![
                ("JENKINS_URL", &url),
                ("JENKINS_DIRECT_CONNECTION", &direct),
                ("JENKINS_INSTANCE_IDENTITY", &key),
            ],
            vec![],
            "-direct",
        ),
        (
            vec![("JENKINS_URL", &url), ("JENKINS_INSTANCE_IDENTITY", &key)],
            vec![],
            "only with -direct",
        ),
        (
            vec![
                ("JENKINS_URL", &url),
                ("JENKINS_PROTOCOLS", "JNLP4-connect"),
            ],
            vec![],
            "only with -direct",
        ),
        (
            vec![("JENKINS_DIRECT_CONNECTION", &direct)],
            vec![],
            "needs -instanceIdentity",
        ),
        (vec![("JENKINS_URL", &url)], vec!["bash"], "SECRET NAME"),
        (vec![], vec![], "missing the controller"),
    ];
    for (env, args, want) in refused {
        let mut env = env;
        env.extend(named);
        let o = docker_run(&img, &env, &args, &home).output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{env:?} {args:?}: {err}");
        assert!(err.contains(want), "{env:?} {args:?}: {err}");
    }
    assert!(
        sim.seen
            .iter()
            .filter(|e| e["event"] == "connected")
            .count()
            == online.len()
    );
}

fn signal(pid: u32, sig: i32) {
    // SAFETY: plain kill(2) on a child process of this test.
    assert_eq!(unsafe { libc::kill(pid as i32, sig) }, 0);
}

fn silent_after_online(transport: &[&str], reconnect_step: &str) {
    // Pings every second, 2 s to answer (SetUpRemotePing); then the whole controller stops
    // (SIGSTOP): its sockets stay open, nothing answers.
    let mut sim = Simulator::start(&["--ping-seconds", "1", "--agent-ping-timeout-seconds", "2"]);
    // Woken up, the simulator finishes what it was doing on the connection the agent left.
    sim.tolerate = vec!["Broken pipe", "Connection reset", "closed"];
    let dir = scratch("dropin-silent");
    let mut cmd = agent_command();
    cmd.args([
        "-url",
        &sim.url,
        "-name",
        "n1",
        "-secret",
        SIM_SECRET,
        "--connect-timeout",
        "2",
    ])
    .args(transport);
    let mut agent = AgentProc::spawn(cmd, &dir);
    sim.wait_for("online", LONG);
    agent.wait_log("pinging the controller as it asked", 1, LONG);
    signal(sim.pid(), libc::SIGSTOP);
    let log = agent.wait_log("; retrying in ", 1, LONG);
    signal(sim.pid(), libc::SIGCONT);
    assert!(
        log.contains(
            "connection lost: the controller did not answer a ping within 2s; reconnecting in"
        ),
        "{log}"
    );
    assert!(log.contains(reconnect_step), "{log}");
    // Back: the agent comes online again on its own.
    sim.wait_for("online", LONG);
}

#[test]
fn a_controller_that_goes_silent_after_online_is_left_and_reconnected_over_websocket() {
    silent_after_online(&["-webSocket"], "WebSocket upgrade at ws://127.0.0.1:");
}

#[test]
fn a_controller_that_goes_silent_after_online_is_left_and_reconnected_over_jnlp4() {
    silent_after_online(&[], "discovery (GET http://127.0.0.1:");
}

#[test]
fn idle_timeout_ends_a_connection_that_stays_silent() {
    // The controller asked for no pings it can answer in time (300 s), so only the idle
    // bound finds the silence.
    let mut sim = Simulator::start(&["--monitor-seconds", "1"]);
    sim.tolerate = vec!["Broken pipe", "Connection reset", "closed"];
    let dir = scratch("dropin-idle");
    let mut cmd = agent_command();
    cmd.args([
        "-url",
        &sim.url,
        "-name",
        "n1",
        "-secret",
        SIM_SECRET,
        "-webSocket",
    ])
    .args(["--idle-timeout", "3s", "--connect-timeout", "2"]);
    let mut agent = AgentProc::spawn(cmd, &dir);
    sim.wait_for("online", LONG);
    signal(sim.pid(), libc::SIGSTOP);
    let log = agent.wait_log(
        "nothing from the controller for 3s (--idle-timeout)",
        1,
        LONG,
    );
    signal(sim.pid(), libc::SIGCONT);
    assert!(log.contains("reconnecting in"), "{log}");
    sim.wait_for("online", LONG);
}

/// `systemd-analyze verify` on a copy of `unit` whose ExecStart names this build's binary
/// (verify checks that the program exists); returns everything it printed.
fn systemd_verify(unit: &str) -> (bool, String) {
    let dir = scratch("dropin-systemd");
    let path = dir.join("nectr-agent.service");
    let unit = unit.replace(
        "/usr/local/bin/nectr-agent",
        env!("CARGO_BIN_EXE_nectr-agent"),
    );
    std::fs::write(&path, unit).unwrap();
    let o = std::process::Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&path)
        .output()
        .expect("run systemd-analyze (scripts/test installs Debian's systemd package)");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    (o.status.success(), said)
}

#[test]
fn the_systemd_unit_passes_systemd_analyze_verify() {
    let unit = std::fs::read_to_string(repo_root().join("agent/dist/nectr-agent.service")).unwrap();
    let (ok, said) = systemd_verify(&unit);
    assert!(
        ok && said.trim().is_empty(),
        "systemd-analyze verify: {said}"
    );
    // The check can fail: a broken copy is reported.
    let (_, said) = systemd_verify(&unit.replace("Type=exec", "Type=bogus"));
    assert!(
        said.contains("bogus"),
        "a broken unit was not reported: {said:?}"
    );
    // What the unit promises an admin: restart on failure but not on a configuration error,
    // the secret from a root-only file handed over as a credential, never on the command line.
    for line in [
        "Restart=on-failure",
        "RestartPreventExitStatus=2",
        "LoadCredential=secret:/etc/nectr-agent/secret",
        "ExecStart=/usr/local/bin/nectr-agent -secret @%d/secret -workDir %S/nectr-agent",
        "EnvironmentFile=/etc/nectr-agent/agent.env",
    ] {
        assert!(unit.lines().any(|l| l == line), "missing {line:?}");
    }
}

/// Processes whose environment carries `mark`.
fn marked_processes(mark: &str) -> Vec<String> {
    let needle = format!("NECTR_TEST_MARK={mark}");
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(env) = std::fs::read(e.path().join("environ")) else {
            continue;
        };
        if env.split(|b| *b == 0).any(|v| v == needle.as_bytes()) {
            let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
            found.push(String::from_utf8_lossy(&cmd).replace('\0', " "));
        }
    }
    found
}

#[test]
fn the_demo_prelude_leaves_nothing_running() {
    // scripts/demo-prelude: the codec against the JDK, an agent online against the controller
    // simulator, an unstash (the whole demo loop is fleet/tests/demo_loop.rs).
    let mark = format!("demo-{}", std::process::id());
    let o = std::process::Command::new(repo_root().join("scripts/demo-prelude"))
        .env("NECTR_TEST_MARK", &mark)
        .output()
        .unwrap();
    let out = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(o.status.success(), "scripts/demo-prelude failed:\n{out}");
    assert!(out.contains("demo done"), "{out}");
    // Every process the demo started carries the mark in its environment; none may outlive it.
    let left = marked_processes(&mark);
    assert!(left.is_empty(), "left running after the demo: {left:#?}");
}

/// An HTTP server that records each request head and answers `reply`.
fn recorder(reply: &'static str) -> (u16, std::sync::mpsc::Receiver<String>) {
    let (tx, rx) = std::sync::mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    let port = fake_server(move |mut s| {
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            let mut b = [0u8; 1];
            if s.read(&mut b).unwrap_or(0) == 0 {
                return;
            }
            head.push(b[0]);
        }
        let _ = tx
            .lock()
            .unwrap()
            .send(String::from_utf8_lossy(&head).into_owned());
        let _ = s.write_all(reply.as_bytes());
    });
    (port, rx)
}

fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn run_to_exit(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String) {
    let dir = scratch("dropin-run");
    let mut cmd = agent_command();
    cmd.args(["-name", "n1", "-noReconnect", "--connect-timeout", "5"])
        .args(args)
        .envs(env.iter().copied());
    AgentProc::spawn(cmd, &dir).wait_exit(LONG)
}

#[test]
fn discovery_tries_each_url_and_sends_the_name_and_credentials() {
    let (port, heads) = recorder("HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n");
    let closed = closed_port();
    let (code, err) = run_to_exit(
        &[
            "-url",
            &format!("http://127.0.0.1:{closed}/"),
            "-url",
            &format!("http://127.0.0.1:{port}/jenkins"),
            "-secret",
            "s",
            "-credentials",
            "builder:pa55word",
        ],
        &[],
    );
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "no controller URL answered: http://127.0.0.1:{closed}/: cannot connect"
        )),
        "{err}"
    );
    assert!(
        err.contains("-credentials USER:PASSWORD"),
        "a 401 says what to do: {err}"
    );
    assert!(!err.contains("pa55word"), "{err}");
    let head = heads.recv_timeout(LONG).unwrap();
    assert!(
        head.starts_with("GET /jenkins/tcpSlaveAgentListener/ HTTP/1.1\r\n"),
        "{head}"
    );
    assert!(head.contains("\r\nNode-Name: n1\r\n"), "{head}");
    let basic = B64.encode("builder:pa55word");
    assert!(
        head.contains(&format!("\r\nAuthorization: Basic {basic}\r\n")),
        "{head}"
    );
}

#[test]
fn proxy_credentials_go_to_the_proxy_only() {
    let reply = "HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n";
    let (port, heads) = recorder(reply);
    let proxy = format!("http://127.0.0.1:{port}");
    let (code, err) = run_to_exit(
        &["-url", "https://127.0.0.1:9/", "-webSocket", "-secret", "s"],
        &[("https_proxy", &proxy)],
    );
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("-proxyCredentials"),
        "a 407 says what to do: {err}"
    );
    let head = heads.recv_timeout(LONG).unwrap();
    assert!(
        head.starts_with("CONNECT 127.0.0.1:9 HTTP/1.1\r\n"),
        "{head}"
    );
    assert!(!head.contains("Proxy-Authorization"), "{head}");
    // From -proxyCredentials, and from user:password@ in the variable.
    for (env_proxy, extra, user) in [
        (
            proxy.clone(),
            vec!["-proxyCredentials", "ci:s3cret"],
            "ci:s3cret",
        ),
        (
            format!("http://ci%40corp:s3cret@127.0.0.1:{port}"),
            vec![],
            "ci@corp:s3cret",
        ),
    ] {
        let mut args = vec!["-url", "https://127.0.0.1:9/", "-webSocket", "-secret", "s"];
        args.extend(extra);
        let (code, err) = run_to_exit(&args, &[("https_proxy", &env_proxy)]);
        assert_eq!(code, Some(1), "{err}");
        assert!(!err.contains("s3cret"), "{err}");
        let head = heads.recv_timeout(LONG).unwrap();
        let basic = B64.encode(user);
        assert!(
            head.contains(&format!("\r\nProxy-Authorization: Basic {basic}\r\n")),
            "{head}"
        );
    }
}

#[test]
fn websocket_headers_are_sent_on_the_upgrade() {
    let (port, heads) = recorder("HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n");
    let (code, err) = run_to_exit(
        &[
            "-url",
            &format!("http://127.0.0.1:{port}/"),
            "-webSocket",
            "-secret",
            "s",
        ],
        &[(
            "REMOTING_OPTS",
            "-webSocketHeader 'X-Farm=build farm 1' -webSocketHeader X-Other=2",
        )],
    );
    assert_eq!(code, Some(1), "{err}");
    // Header names are case-insensitive (the WebSocket client sends them in lower case).
    let head = heads.recv_timeout(LONG).unwrap().to_ascii_lowercase();
    assert!(head.contains("\r\nx-farm: build farm 1\r\n"), "{head}");
    assert!(head.contains("\r\nx-other: 2\r\n"), "{head}");
}

/// The `tr` (timer) field of the agent's TCP connection to `port` in /proc/net/tcp: 2 is
/// the keep-alive timer, 0 none.
fn agent_socket_timer(port: u16) -> Option<u32> {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    table.lines().skip(1).find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        let remote_port = u16::from_str_radix(f[2].rsplit(':').next()?, 16).ok()?;
        let established = f[3] == "01";
        (remote_port == port && established)
            .then(|| u32::from_str_radix(f[5].split(':').next()?, 16).ok())
            .flatten()
    })
}

#[test]
fn tcp_keep_alive_is_on_unless_no_keep_alive() {
    let key = fake_identity(&scratch("dropin-keepalive")).1;
    for (extra, want) in [(None, 2), (Some("-noKeepAlive"), 0)] {
        let port = silent_server();
        let dir = scratch("dropin-keepalive-run");
        let mut cmd = agent_command();
        cmd.args([
            "-direct",
            &format!("127.0.0.1:{port}"),
            "-instanceIdentity",
            &key,
        ])
        .args(["-name", "n1", "-secret", "s", "--connect-timeout", "60"])
        .args(extra);
        let agent = AgentProc::spawn(cmd, &dir);
        // The agent sent its preamble and waits for the ACK on an idle connection.
        let deadline = std::time::Instant::now() + LONG;
        let timer = loop {
            if let Some(t) = agent_socket_timer(port).filter(|t| *t != 1) {
                break t;
            }
            assert!(std::time::Instant::now() < deadline, "{}", agent.stderr());
            std::thread::sleep(Duration::from_millis(50));
        };
        assert_eq!(timer, want, "{extra:?}");
    }
}

#[test]
fn direct_without_url_goes_online_on_the_real_jenkins() {
    // Issue 8, item 7, against Jenkins 2.460 itself: the identity an admin copies from
    // <jenkins>/tcpSlaveAgentListener/, the agent port, no -url.
    let j = support::jenkins::Jenkins::shared();
    let name = "dropin-direct";
    let root = scratch(name);
    let secret = j.create_node(name, name, 1, &root);
    let key = instance_identity(&j.url);
    let mut cmd = agent_command();
    cmd.args(["-direct", &format!("127.0.0.1:{}", j.agent_port)])
        .args(["-instanceIdentity", &key, "-protocols", "JNLP4-connect"])
        .args(["-name", name, "-secret", &secret, "-workDir"])
        .arg(&root);
    let agent = AgentProc::spawn(cmd, &root);
    j.wait_online(name, LONG);
    assert!(
        agent.stderr().contains("(JNLP4-connect, -direct)"),
        "{}",
        agent.stderr()
    );
}
