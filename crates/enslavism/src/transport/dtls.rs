//! str0m's DTLS (dimpl) with its configuration made once per process.
//!
//! str0m's `rust-crypto` backend builds a new dimpl `Config` for every
//! connection, and dimpl checks its crypto provider on every build: a test
//! key exchange on each of P-256, P-384 and X25519, and a signature check.
//! That was 1.0–1.5 ms of a slave's CPU per connection on a 2-core AMD EPYC
//! machine, four fifths of what the whole setup costs the answering side
//! (`bench/probes/src/bin/setup_cost.rs`; doc/upstream.md); with it built
//! once, Chromium's sequential setups took 0.87× the time and 10 at once
//! 0.76× (`BENCH_BASELINE=6d27a0e BENCH_RUNS=3 npm run bench -- setup`). Here the
//! configuration is built (and checked) once, and each connection gets a
//! `dimpl::Dtls` made from it, exactly as the backend makes it otherwise.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use str0m::crypto::dtls::{DtlsCert, DtlsImplError, DtlsInstance, DtlsOutput, DtlsProvider, DtlsVersion, ProtocolVersion};
use str0m::crypto::{CryptoError, CryptoProvider};

/// The process's one DTLS provider: what str0m's backend would make, from
/// configurations built once per MTU asked for (str0m asks with one).
#[derive(Debug)]
struct PrebuiltDtls {
    /// The backend's own provider, for what is made once anyway (certificates).
    backend: &'static dyn DtlsProvider,
    configs: Mutex<Vec<(Option<usize>, Arc<dimpl::Config>)>>,
}

static PREBUILT: std::sync::OnceLock<PrebuiltDtls> = std::sync::OnceLock::new();

/// `provider` with its DTLS made from a configuration built once. The
/// first call's backend serves the whole process: every caller passes
/// str0m's `rust-crypto` one (`SharedCrypto::new`).
pub(crate) fn with_prebuilt_dtls(mut provider: CryptoProvider) -> CryptoProvider {
    let backend = provider.dtls_provider;
    provider.dtls_provider = PREBUILT.get_or_init(|| PrebuiltDtls { backend, configs: Mutex::new(Vec::new()) });
    provider
}

impl PrebuiltDtls {
    /// The configuration for `mtu`, built on first use.
    fn config(&self, mtu: Option<usize>) -> Result<Arc<dimpl::Config>, CryptoError> {
        let mut configs = self.configs.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, config)) = configs.iter().find(|(m, _)| *m == mtu) {
            return Ok(config.clone());
        }
        // What str0m's backend asks of dimpl: ICE has checked the peer's
        // address already, so no cookie exchange.
        let mut builder = dimpl::Config::builder().use_server_cookie(false);
        if let Some(mtu) = mtu {
            builder = builder.mtu(mtu);
        }
        let config = Arc::new(builder.build().map_err(|e| CryptoError::Other(format!("DTLS configuration: {e}")))?);
        configs.push((mtu, config.clone()));
        Ok(config)
    }
}

impl DtlsProvider for PrebuiltDtls {
    fn generate_certificate(&self) -> Option<DtlsCert> {
        self.backend.generate_certificate()
    }

    fn new_dtls(
        &self,
        cert: &DtlsCert,
        now: Instant,
        version: DtlsVersion,
        mtu: Option<usize>,
    ) -> Result<Box<dyn DtlsInstance>, CryptoError> {
        let config = self.config(mtu)?;
        let dtls = match version {
            DtlsVersion::Dtls12 => dimpl::Dtls::new_12(config, cert.clone(), now),
            DtlsVersion::Dtls13 => dimpl::Dtls::new_13(config, cert.clone(), now),
            DtlsVersion::Auto => dimpl::Dtls::new_auto(config, cert.clone(), now),
            other => return Err(CryptoError::Other(format!("{other} is not supported"))),
        };
        Ok(Box::new(Instance(dtls)))
    }
}

/// One connection's DTLS: dimpl's, as str0m drives it.
#[derive(Debug)]
struct Instance(dimpl::Dtls);

impl DtlsInstance for Instance {
    fn set_active(&mut self, active: bool) {
        self.0.set_active(active);
    }

    fn handle_packet(&mut self, packet: &[u8]) -> Result<(), DtlsImplError> {
        self.0.handle_packet(packet)
    }

    fn poll_output<'a>(&mut self, buf: &'a mut [u8]) -> DtlsOutput<'a> {
        self.0.poll_output(buf)
    }

    fn handle_timeout(&mut self, now: Instant) -> Result<(), DtlsImplError> {
        self.0.handle_timeout(now)
    }

    fn send_application_data(&mut self, data: &[u8]) -> Result<(), DtlsImplError> {
        self.0.send_application_data(data)
    }

    fn is_active(&self) -> bool {
        self.0.is_active()
    }

    fn protocol_version(&self) -> Option<ProtocolVersion> {
        self.0.protocol_version()
    }

    fn is_closing(&self) -> bool {
        self.0.is_closing()
    }

    fn is_closed(&self) -> bool {
        self.0.is_closed()
    }

    fn close(&mut self) -> Result<(), DtlsImplError> {
        self.0.close()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_share_one_configuration_per_mtu() {
        let provider = with_prebuilt_dtls(str0m::crypto::from_feature_flags());
        let cert = provider.dtls_provider.generate_certificate().expect("a certificate");
        let now = Instant::now();
        for version in [DtlsVersion::Dtls12, DtlsVersion::Auto, DtlsVersion::Dtls12] {
            provider.dtls_provider.new_dtls(&cert, now, version, Some(1150)).expect("a DTLS instance");
        }
        provider.dtls_provider.new_dtls(&cert, now, DtlsVersion::Dtls12, Some(1200)).expect("a DTLS instance");
        let prebuilt = PREBUILT.get().expect("installed");
        let mtus: Vec<_> = prebuilt.configs.lock().unwrap().iter().map(|(mtu, _)| *mtu).collect();
        // Other tests of this process may have asked for str0m's default too.
        assert_eq!(mtus.iter().filter(|m| **m == Some(1150)).count(), 1);
        assert_eq!(mtus.iter().filter(|m| **m == Some(1200)).count(), 1);
    }
}
