//! Mutual TLS: only clients with a certificate from the CA get in.

use super::*;

struct Pki {
    dir: tempfile::TempDir,
    ca_pem: String,
}

impl Pki {
    /// A CA, a service certificate for localhost/127.0.0.1 (server and client use) and a client
    /// certificate, all written to a temporary folder; and a second, unrelated CA's client.
    fn generate() -> Pki {
        use rcgen::{
            BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
            KeyPair, KeyUsagePurpose,
        };
        let dir = tempfile::tempdir().unwrap();
        let new_ca = |name: &str| {
            let key = KeyPair::generate().unwrap();
            let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params.distinguished_name.push(DnType::CommonName, name);
            params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
            let cert = params.self_signed(&key).unwrap();
            (cert.pem(), Issuer::new(params, key))
        };
        let leaf = |issuer: &Issuer<'_, KeyPair>,
                    names: Vec<String>,
                    usages: Vec<ExtendedKeyUsagePurpose>| {
            let key = KeyPair::generate().unwrap();
            let mut params = CertificateParams::new(names).unwrap();
            params
                .distinguished_name
                .push(DnType::CommonName, "kg test");
            params.extended_key_usages = usages;
            let cert = params.signed_by(&key, issuer).unwrap();
            (cert.pem(), key.serialize_pem())
        };
        let (ca_pem, ca) = new_ca("kg test CA");
        let (_, rogue) = new_ca("someone else's CA");
        let (server_cert, server_key) = leaf(
            &ca,
            vec!["localhost".into(), "127.0.0.1".into()],
            vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ],
        );
        let (client_cert, client_key) = leaf(
            &ca,
            vec!["console.test".into()],
            vec![ExtendedKeyUsagePurpose::ClientAuth],
        );
        let (rogue_cert, rogue_key) = leaf(
            &rogue,
            vec!["rogue.test".into()],
            vec![ExtendedKeyUsagePurpose::ClientAuth],
        );
        for (name, pem) in [
            ("ca.pem", &ca_pem),
            ("server.pem", &server_cert),
            ("server.key", &server_key),
            ("client.pem", &client_cert),
            ("client.key", &client_key),
            ("rogue.pem", &rogue_cert),
            ("rogue.key", &rogue_key),
        ] {
            std::fs::write(dir.path().join(name), pem).unwrap();
        }
        Pki { dir, ca_pem }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(name)).unwrap()
    }

    /// Mutual TLS for a service: its certificate, clients must show one from the CA, peers
    /// trusted by the CA, and a plaintext health listener.
    fn secure(&self, common: &mut CommonConfig) -> std::net::SocketAddr {
        let health = std::net::SocketAddr::from(([127, 0, 0, 1], kg_tests::free_port()));
        common.tls_cert = Some(self.path("server.pem"));
        common.tls_key = Some(self.path("server.key"));
        common.tls_client_ca = Some(self.path("ca.pem"));
        common.tls_ca = Some(self.path("ca.pem"));
        common.health_listen_addr = Some(health);
        health
    }

    /// A TLS channel to `addr` trusting the CA, presenting `client` (`"client"`, `"rogue"`) or
    /// no certificate.
    fn channel(&self, addr: std::net::SocketAddr, client: Option<&str>) -> Channel {
        let mut tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&self.ca_pem))
            .domain_name("localhost");
        if let Some(name) = client {
            tls = tls.identity(Identity::from_pem(
                self.read(&format!("{name}.pem")),
                self.read(&format!("{name}.key")),
            ));
        }
        Endpoint::from_shared(format!("https://localhost:{}", addr.port()))
            .unwrap()
            .tls_config(tls)
            .unwrap()
            .connect_timeout(Duration::from_secs(3))
            .timeout(Duration::from_secs(20))
            .connect_lazy()
    }
}

/// A service started on its own (the harness's `Running` checks health over plaintext on the
/// gRPC port, which TLS closes): waits for SERVING on the plaintext health listener.
struct TlsService {
    addr: std::net::SocketAddr,
    trigger: kg_runtime::shutdown::ShutdownTrigger,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl TlsService {
    async fn start<F, Fut>(health: std::net::SocketAddr, run: F) -> TlsService
    where
        F: FnOnce(tokio::net::TcpListener, Shutdown) -> Fut,
        Fut: std::future::Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (trigger, shutdown) = Shutdown::new();
        let task = tokio::spawn(run(listener, shutdown));
        let url = format!("http://{health}");
        for _ in 0..200 {
            assert!(!task.is_finished(), "the service exited: {:?}", task.await);
            if let Ok(tonic_health::pb::health_check_response::ServingStatus::Serving) =
                mesh::health(&url, "").await
            {
                return TlsService {
                    addr,
                    trigger,
                    task,
                };
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the service at {addr} never reported SERVING on {health}");
    }

    async fn stop(self) {
        self.trigger.trigger();
        self.task.await.unwrap().unwrap();
    }
}

#[tokio::test]
async fn with_mutual_tls_only_clients_with_a_certificate_from_the_ca_get_in() {
    log_capture();
    let pki = Pki::generate();
    let identity_db = mesh::fresh_db().await.unwrap();
    let registration_db = mesh::fresh_db().await.unwrap();
    let website = Website::start().await.unwrap();

    let mut identity_common = secured(&identity_db.url);
    let identity_health = pki.secure(&mut identity_common);
    let config = identity_config(identity_common, true);
    let identity = TlsService::start(identity_health, move |l, s| {
        kg_identity_check::run(config, l, s)
    })
    .await;
    // registration calls identity-check over https, presenting its certificate
    let mut config = mesh::registration_config(
        &registration_db.url,
        &format!("https://localhost:{}", identity.addr.port()),
        None,
    );
    config.common = secured(&registration_db.url);
    let registration_health = pki.secure(&mut config.common);
    let registration = TlsService::start(registration_health, move |l, s| {
        kg_registration::run(config, l, s)
    })
    .await;

    let operator = bearer("ops-1", Role::Operator);
    let upsert = |id: &str| {
        req(
            UpsertAccountRequest {
                request_id: uuid::Uuid::new_v4().to_string(),
                account: Some(fixtures::eligible_account(id)),
            },
            &operator,
        )
    };

    // no client certificate; a certificate from another CA; plaintext: all refused
    for (what, channel) in [
        ("no certificate", pki.channel(identity.addr, None)),
        (
            "another CA's certificate",
            pki.channel(identity.addr, Some("rogue")),
        ),
        (
            "plaintext",
            mesh::channel(&format!("http://{}", identity.addr))
                .await
                .unwrap(),
        ),
    ] {
        let err = IdentityCheckServiceClient::new(channel)
            .upsert_account(upsert("acct-intruder"))
            .await
            .unwrap_err();
        assert_ne!(err.code(), Code::Ok, "{what}");
        assert!(
            matches!(
                err.code(),
                Code::Unavailable | Code::Unknown | Code::Internal | Code::Cancelled
            ),
            "{what}: a transport failure, not an answer of the service: {err:?}"
        );
    }

    // a certificate from the CA gets through, end to end
    let mut idc = IdentityCheckServiceClient::new(pki.channel(identity.addr, Some("client")));
    idc.upsert_account(upsert("acct-tls")).await.unwrap();
    let status = idc
        .get_account(req(
            GetAccountRequest {
                name: "accounts/acct-intruder".into(),
            },
            &operator,
        ))
        .await
        .unwrap_err();
    assert_eq!(
        status.code(),
        Code::NotFound,
        "the refused clients wrote nothing"
    );
    // the token is still required inside the TLS session
    let status = idc.upsert_account(req(
        UpsertAccountRequest {
            request_id: uuid::Uuid::new_v4().to_string(),
            account: Some(fixtures::eligible_account("acct-x")),
        },
        "",
    ));
    assert_eq!(status.await.unwrap_err().code(), Code::Unauthenticated);

    let mut reg = RegistrationServiceClient::new(pki.channel(registration.addr, Some("client")));
    let application = reg
        .submit_application(req(
            fixtures::submission("acct-tls", 870, &website.url("/en")),
            &bearer("acct-tls", Role::Applicant),
        ))
        .await
        .expect("registration reaches identity-check over mutual TLS")
        .into_inner()
        .application
        .unwrap();
    assert_eq!(application.state, ApplicationState::Submitted as i32);
    let err = RegistrationServiceClient::new(pki.channel(registration.addr, None))
        .get_application(req(
            GetApplicationRequest {
                name: application.name,
                ..Default::default()
            },
            &bearer("acct-tls", Role::Applicant),
        ))
        .await
        .unwrap_err();
    assert_ne!(err.code(), Code::Ok);

    // health: over TLS with a certificate on the gRPC port, and in plaintext on the probe port
    let status = tonic_health::pb::health_client::HealthClient::new(
        pki.channel(identity.addr, Some("client")),
    )
    .check(tonic_health::pb::HealthCheckRequest::default())
    .await
    .unwrap()
    .into_inner()
    .status;
    assert_eq!(
        status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
    // the plaintext listener serves health only
    let err = IdentityCheckServiceClient::new(
        mesh::channel(&format!("http://{identity_health}"))
            .await
            .unwrap(),
    )
    .get_account(req(
        GetAccountRequest {
            name: "accounts/acct-tls".into(),
        },
        &operator,
    ))
    .await
    .unwrap_err();
    assert_eq!(err.code(), Code::Unimplemented, "{err:?}");

    // The CLI speaks the same TLS from the same variables (the chart's test pod runs
    // `koogallery health` like this): with the client certificate it gets in; without one the
    // handshake refuses it; without a CA it says what is missing.
    let addr = format!("https://localhost:{}", identity.addr.port());
    let (ok, out) = koogallery(
        &["health", "--addr", &addr],
        &[
            ("KG_TLS_CA", pki.path("ca.pem")),
            ("KG_TLS_CERT", pki.path("client.pem")),
            ("KG_TLS_KEY", pki.path("client.key")),
        ],
    )
    .await;
    assert!(ok && out.contains("SERVING"), "{out}");
    let (ok, out) = koogallery(
        &["health", "--addr", &addr],
        &[("KG_TLS_CA", pki.path("ca.pem"))],
    )
    .await;
    assert!(
        !ok && !out.contains("SERVING"),
        "no client certificate: {out}"
    );
    let (ok, out) = koogallery(&["health", "--addr", &addr], &[]).await;
    assert!(!ok && out.contains("KG_TLS_CA"), "{out}");

    registration.stop().await;
    identity.stop().await;
}

/// Runs the `koogallery` binary of this build (next to the test binaries; `cargo test
/// --workspace` builds it) with only the given KG_TLS_* variables: (success, stdout + stderr).
async fn koogallery(args: &[&str], env: &[(&str, PathBuf)]) -> (bool, String) {
    let deps = std::env::current_exe().unwrap();
    let bin = deps
        .parent()
        .and_then(|d| d.parent())
        .map(|d| d.join(format!("koogallery{}", std::env::consts::EXE_SUFFIX)))
        .unwrap();
    assert!(
        bin.is_file(),
        "{} is missing: build the CLI first (cargo build -p koogallery)",
        bin.display()
    );
    let mut command = tokio::process::Command::new(bin);
    command.args(args);
    for name in ["KG_TLS_CA", "KG_TLS_CERT", "KG_TLS_KEY", "KG_TLS_CLIENT_CA"] {
        command.env_remove(name);
    }
    for (name, value) in env {
        command.env(name, value);
    }
    let out = tokio::time::timeout(Duration::from_secs(30), command.output())
        .await
        .expect("koogallery health did not finish within 30 s")
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

// ---------------------------------------------------------------------------------------------
// Limits
