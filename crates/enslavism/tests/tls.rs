//! TLS from Rust alone: a master on its own HTTPS/WSS port with a
//! certificate made here (rcgen), slaves that trust its CA or do not, an
//! expired certificate, and the certificate swap. Everything binds 127.0.0.1.

use std::sync::Arc;
use std::time::Duration;

use enslavism::dial::DialError;
use enslavism::master::{Master, MasterConfig, NoHooks};
use enslavism::slave::{Slave, SlaveConfig, SlaveError};
use enslavism::tls::{rustls, CertificateDer, PrivateKeyDer, TlsIdentity};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};

/// A CA and what it signs.
struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    der: CertificateDer<'static>,
}

impl TestCa {
    fn new() -> TestCa {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        TestCa { der: cert.der().clone(), issuer: Issuer::new(params, key) }
    }

    /// A server certificate for 127.0.0.1, valid from `not_before` to `not_after` (years).
    fn identity(&self, years: (i32, i32)) -> TlsIdentity {
        let mut params = CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
        params.not_before = rcgen::date_time_ymd(years.0, 1, 1);
        params.not_after = rcgen::date_time_ymd(years.1, 1, 1);
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        TlsIdentity::from_der(vec![cert.der().clone()], PrivateKeyDer::Pkcs8(key.serialize_der().into())).unwrap()
    }
}

const VALID: (i32, i32) = (2020, 2200);
const EXPIRED: (i32, i32) = (2000, 2001);

fn tls_master(identity: TlsIdentity) -> (Master, String) {
    let config = MasterConfig::builder().tls(identity).build().unwrap();
    let master = Master::bind("127.0.0.1:0".parse().unwrap(), config, Arc::new(NoHooks)).unwrap();
    let url = format!("wss://{}", master.local_addr().unwrap());
    (master, url)
}

async fn slave(url: &str, ca: Vec<CertificateDer<'static>>) -> Result<Slave, SlaveError> {
    let config = SlaveConfig::builder().ca(ca).reconnect(false).build().unwrap();
    let connecting = Slave::builder(url).user_data(r#"{"name":"tls"}"#).config(config).connect();
    tokio::time::timeout(Duration::from_secs(10), connecting).await.expect("connect() ends in time")
}

#[tokio::test]
async fn a_slave_trusting_the_ca_registers_over_wss_and_one_that_does_not_is_told_why() {
    let ca = TestCa::new();
    let (master, url) = tls_master(ca.identity(VALID));
    let trusted = slave(&url, vec![ca.der.clone()]).await.expect("registered over wss");
    assert_eq!(master.peer_counts().0, 1);

    match slave(&url, Vec::new()).await {
        Err(SlaveError::Dial(DialError::Tls {
            source: rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
            ..
        })) => {}
        other => panic!("expected an unknown issuer, got {:?}", other.err()),
    }
    trusted.close().await;
    master.close().await;
}

#[tokio::test]
async fn an_expired_certificate_is_refused_and_a_swap_fixes_it_for_new_connections() {
    let ca = TestCa::new();
    let (master, url) = tls_master(ca.identity(EXPIRED));
    let err = slave(&url, vec![ca.der.clone()]).await.err().expect("an expired certificate is refused");
    assert!(
        matches!(
            &err,
            SlaveError::Dial(DialError::Tls {
                source: rustls::Error::InvalidCertificate(rustls::CertificateError::ExpiredContext { .. }),
                ..
            })
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("has expired"), "{err}");

    master.set_tls(ca.identity(VALID)).unwrap();
    let renewed = slave(&url, vec![ca.der.clone()]).await.expect("registered after the swap");
    renewed.close().await;
    master.close().await;
}

#[tokio::test]
async fn set_tls_on_a_plain_master_is_an_error() {
    let ca = TestCa::new();
    let master = Master::bind("127.0.0.1:0".parse().unwrap(), MasterConfig::default(), Arc::new(NoHooks)).unwrap();
    assert!(matches!(master.set_tls(ca.identity(VALID)), Err(enslavism::master::MasterError::NotTls)));
    master.close().await;
}
