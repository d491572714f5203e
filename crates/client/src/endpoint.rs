//! Where and how an agency reaches the central: its address and timeout, TLS when a
//! certificate authority is configured, and the agency's key when it has one.
//!
//! Loaded once at start from the settings, so a missing or damaged file is a configuration
//! error (exit 2) before anything is sent, and every connection then uses the same.

use std::{sync::Arc, time::Duration};

use runtime::settings::ConfigError;
use security::{
    tls::{self, ClientTls},
    AgencyKey,
};

use crate::Config;

/// The central as this agency reaches it.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// `host:port`.
    pub address: String,
    /// The agency.
    pub agency: u32,
    /// Longest wait to connect (name lookup and TLS handshake included) and for an answer.
    pub timeout: Duration,
    /// TLS, and the name the central's certificate must carry.
    pub tls: Option<(Arc<ClientTls>, tls::CentralName)>,
    /// The agency's key: every connection proves the agency with it.
    pub key: Option<AgencyKey>,
}

impl Endpoint {
    /// The endpoint `config` describes, its key and certificate authority read.
    ///
    /// # Errors
    /// A file that cannot be read or is not what it should be, a key of another agency, or
    /// a server name that is not one: configuration errors, naming the setting.
    pub fn from_config(config: &Config) -> Result<Endpoint, ConfigError> {
        let key = match &config.key_path {
            Some(path) => {
                let key = AgencyKey::load(path)
                    .map_err(|e| ConfigError::new(format!("credentials.key (CLI_KEY): {e}")))?;
                if key.agency() != config.id {
                    return Err(ConfigError::new(format!(
                        "credentials.key (CLI_KEY): {} is agency {}'s key, not agency {}'s",
                        path.display(),
                        key.agency(),
                        config.id
                    )));
                }
                Some(key)
            }
            None => None,
        };
        let tls = match &config.tls_ca {
            Some(ca) => {
                let client = tls::client_config(ca)
                    .map_err(|e| ConfigError::new(format!("tls.ca (CLI_TLS_CA): {e}")))?;
                let name = config.tls_name.as_deref().unwrap_or(&config.server_address);
                let name = tls::server_name(name)
                    .map_err(|e| ConfigError::new(format!("tls.name (CLI_TLS_NAME): {e}")))?;
                Some((client, name))
            }
            None => None,
        };
        Ok(Endpoint {
            address: config.server_address.clone(),
            agency: config.id,
            timeout: config.server_timeout,
            tls,
            key,
        })
    }
}
