//! Who may connect, as which client id, and to which topics.
//!
//! - [`passwords`]: the password file (`auth.password_file`, argon2id hashes);
//! - [`jwt`]: JSON Web Tokens as passwords (`[auth.jwt]`);
//! - [`acl`]: the ACL file (`authz.acl_file`, Mosquitto's syntax) and [`filters`], the
//!   topic-filter algebra it needs;
//! - [`client_id`]: client-id ownership (`authz.client_id_pattern`);
//! - [`failures`]: slowing down repeated failures from one address.
//!
//! [`Security`] holds the current [`Policy`], built from the files at startup and again
//! on SIGHUP (a file that does not parse then keeps the old policy, and says why).
//! Connection tasks ask it at CONNECT ([`Security::authenticate`]) and for every PUBLISH
//! and SUBSCRIBE ([`Security::may_publish`], [`Security::may_subscribe`]).

pub mod acl;
pub mod client_id;
pub mod failures;
pub mod filters;
pub mod jwt;
pub mod passwords;

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use tabmq_protocol::ReasonCode;
use tabmq_protocol::packet::Connect;
use tokio::sync::Semaphore;
use tracing::{info, warn};

use self::acl::{Acl, Subject};
use self::client_id::ClientIdPattern;
use self::failures::FailureLog;
use self::jwt::{JwtVerifier, looks_like_jwt};
use self::passwords::PasswordFile;
use crate::config::{Config, Jwt as JwtConfig};
use crate::metrics::Metrics;

/// A security file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SecurityError {
    /// The file could not be read.
    #[error("cannot read {option} file {path}: {source}")]
    Read {
        /// The config option naming the file.
        option: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file does not parse.
    #[error("{option} file {path}, {reason}")]
    Parse {
        /// The config option naming the file.
        option: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong, with the line.
        reason: String,
    },
}

/// Who a connection is: the user it authenticated as, or anonymous.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identity {
    /// The user name, `None` for an anonymous client.
    pub username: Option<Arc<str>>,
    /// When its token expires (seconds since the Unix epoch, leeway included): the
    /// connection ends then.
    pub expires_at: Option<u64>,
    /// The topic filters its token limits it to, if any.
    pub grants: Option<Arc<TokenGrants>>,
}

/// A token's own limits: `None` for a list the token does not carry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenGrants {
    /// Filters it may publish to.
    pub publish: Option<Vec<String>>,
    /// Filters it may subscribe within.
    pub subscribe: Option<Vec<String>>,
}

/// What the files and settings say, as of the last (re)load.
#[derive(Debug, Default)]
pub struct Policy {
    passwords: Option<PasswordFile>,
    jwt: Option<JwtVerifier>,
    acl: Option<Acl>,
    allow_anonymous: bool,
    client_id_pattern: Option<ClientIdPattern>,
}

impl Policy {
    /// Whether `identity`, connected as `client_id`, may publish to `topic`.
    fn permits_publish(&self, identity: &Identity, client_id: &str, topic: &str) -> bool {
        if topic.starts_with("$SYS/") {
            return false;
        }
        let by_token = identity
            .grants
            .as_ref()
            .and_then(|grants| grants.publish.as_ref())
            .is_none_or(|filters| {
                filters
                    .iter()
                    .any(|filter| tabmq_protocol::topic::matches(filter, topic))
            });
        by_token
            && self
                .acl
                .as_ref()
                .is_none_or(|acl| acl.may_write(subject(identity, client_id), topic))
    }
}

/// The broker's authentication and authorization.
#[derive(Debug)]
pub struct Security {
    password_file: Option<PathBuf>,
    jwt: Option<JwtConfig>,
    acl_file: Option<PathBuf>,
    allow_anonymous: bool,
    client_id_pattern: Option<ClientIdPattern>,
    policy: RwLock<Arc<Policy>>,
    /// Password checks running at once: one per core, so a flood of guesses queues
    /// instead of taking every thread.
    hashing: Semaphore,
    failures: Mutex<FailureLog>,
    metrics: Arc<Metrics>,
}

fn read(option: &'static str, path: &Path) -> Result<String, SecurityError> {
    std::fs::read_to_string(path).map_err(|source| SecurityError::Read {
        option,
        path: path.to_owned(),
        source,
    })
}

fn path_of(setting: &str) -> Option<PathBuf> {
    (!setting.is_empty()).then(|| setting.into())
}

/// Whether anonymous clients are let in when `auth.allow_anonymous` is not set: only when
/// no credentials are configured and every listener is on a loopback address; and why.
pub fn anonymous_by_default(config: &Config) -> (bool, &'static str) {
    if !config.auth.password_file.is_empty() {
        return (false, "credentials are configured (auth.password_file)");
    }
    if config.auth.jwt.is_configured() {
        return (false, "credentials are configured (auth.jwt)");
    }
    if config.tls.use_identity_as_username {
        return (false, "credentials are configured (tls.use_identity_as_username)");
    }
    let listeners = &config.listeners;
    let public = [&listeners.ws, &listeners.tcp, &listeners.wss, &listeners.mqtts]
        .into_iter()
        .filter(|address| !address.is_empty())
        .any(|address| {
            address
                .parse::<std::net::SocketAddr>()
                .is_ok_and(|a| !a.ip().is_loopback())
        });
    if public {
        (false, "a listener is on a non-loopback address")
    } else {
        (
            true,
            "no credentials are configured and every listener is on loopback",
        )
    }
}

impl Security {
    /// Reads the configured files; logs what anonymous clients may do, and why.
    pub fn load(config: &Config, metrics: Arc<Metrics>) -> Result<Self, SecurityError> {
        let allow_anonymous = match config.auth.allow_anonymous {
            Some(allow) => {
                info!(
                    allow_anonymous = allow,
                    "anonymous clients: as configured (auth.allow_anonymous)"
                );
                allow
            }
            None => {
                let (allow, why) = anonymous_by_default(config);
                info!(allow_anonymous = allow, "anonymous clients: {why}");
                allow
            }
        };
        let client_id_pattern = match config.authz.client_id_pattern.as_str() {
            "" => None,
            pattern => ClientIdPattern::parse(pattern).ok(),
        };
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let security = Self {
            password_file: path_of(&config.auth.password_file),
            jwt: config.auth.jwt.is_configured().then(|| config.auth.jwt.clone()),
            acl_file: path_of(&config.authz.acl_file),
            allow_anonymous,
            client_id_pattern,
            policy: RwLock::default(),
            hashing: Semaphore::new(cores),
            failures: Mutex::default(),
            metrics,
        };
        security.reload()?;
        Ok(security)
    }

    /// Reads the files again (SIGHUP). On an error the current policy stays.
    pub fn reload(&self) -> Result<(), SecurityError> {
        let passwords =
            match &self.password_file {
                Some(path) => Some(PasswordFile::parse(&read("auth.password_file", path)?).map_err(
                    |error| SecurityError::Parse {
                        option: "auth.password_file",
                        path: path.clone(),
                        reason: error.to_string(),
                    },
                )?),
                None => None,
            };
        let acl =
            match &self.acl_file {
                Some(path) => Some(Acl::parse(&read("authz.acl_file", path)?).map_err(|error| {
                    SecurityError::Parse {
                        option: "authz.acl_file",
                        path: path.clone(),
                        reason: error.to_string(),
                    }
                })?),
                None => None,
            };
        let jwt = match &self.jwt {
            Some(config) => Some(load_jwt(config)?),
            None => None,
        };
        if let Some(passwords) = &passwords {
            info!(users = passwords.len(), "password file loaded");
        }
        if acl.is_some() {
            info!("ACL file loaded");
        }
        let policy = Policy {
            passwords,
            jwt,
            acl,
            allow_anonymous: self.allow_anonymous,
            client_id_pattern: self.client_id_pattern.clone(),
        };
        *self
            .policy
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(policy);
        Ok(())
    }

    fn policy(&self) -> Arc<Policy> {
        self.policy
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Decides a CONNECT from `peer`: who the client is, or the CONNACK reason code that
    /// refuses it (0x86 bad user name or password, 0x87 not authorized, 0x85 a client id
    /// this user may not use). Credential failures are answered after a growing delay.
    /// `certified`: the user a verified TLS client certificate names
    /// (`tls.use_identity_as_username`), which needs no password.
    pub async fn authenticate(
        &self,
        connect: &Connect,
        peer: IpAddr,
        certified: Option<&str>,
    ) -> Result<Identity, ReasonCode> {
        let policy = self.policy();
        let identity = match certified {
            Some(user) => {
                let identity = Identity {
                    username: Some(user.into()),
                    ..Identity::default()
                };
                self.matching_user_name(connect, peer, identity).await?
            }
            None => self.identify(connect, peer, &policy).await?,
        };
        if let Some(pattern) = &policy.client_id_pattern
            && !connect.client_id.is_empty()
            && !pattern.allows(&connect.client_id, identity.username.as_deref())
        {
            info!(%peer, client_id = %connect.client_id, user = identity.username.as_deref(), "refused: client id not owned by this user");
            Metrics::inc(&self.metrics.auth_failures_total);
            return Err(ReasonCode::ClientIdentifierNotValid);
        }
        if let Some(will) = &connect.will
            && !policy.permits_publish(&identity, &connect.client_id, &will.topic)
        {
            info!(%peer, client_id = %connect.client_id, "refused: will topic not writable by this client");
            Metrics::inc(&self.metrics.acl_denials_total);
            return Err(ReasonCode::NotAuthorized);
        }
        Ok(identity)
    }

    /// Who the CONNECT's credentials prove the client is, by the policy.
    async fn identify(
        &self,
        connect: &Connect,
        peer: IpAddr,
        policy: &Policy,
    ) -> Result<Identity, ReasonCode> {
        let password = connect.password.as_deref().unwrap_or_default();
        match (&connect.username, &policy.passwords, &policy.jwt) {
            (_, _, Some(verifier)) if looks_like_jwt(password) => {
                let claims = match verifier.verify(&String::from_utf8_lossy(password)) {
                    Ok(claims) => claims,
                    Err(why) => {
                        info!(%peer, %why, "token refused");
                        return Err(self.refuse(peer, ReasonCode::BadUserNameOrPassword).await);
                    }
                };
                let grants = (claims.publish.is_some() || claims.subscribe.is_some()).then(|| {
                    Arc::new(TokenGrants {
                        publish: claims.publish,
                        subscribe: claims.subscribe,
                    })
                });
                let identity = Identity {
                    username: Some(claims.sub.into()),
                    expires_at: Some(claims.exp.saturating_add(verifier.leeway_secs())),
                    grants,
                };
                self.matching_user_name(connect, peer, identity).await
            }
            (Some(user), Some(passwords), _) => {
                let known = passwords.hash_of(user);
                // An unknown user costs a hash check too, so timing does not tell them apart.
                let hash = known.unwrap_or_else(|| passwords::decoy()).to_owned();
                let password = password.to_vec();
                let matched = {
                    let _permit = self.hashing.acquire().await;
                    tokio::task::spawn_blocking(move || passwords::verify(&hash, &password))
                        .await
                        .unwrap_or(false)
                };
                if !(matched && known.is_some()) {
                    return Err(self.refuse(peer, ReasonCode::BadUserNameOrPassword).await);
                }
                Ok(Identity {
                    username: Some(user.as_str().into()),
                    ..Identity::default()
                })
            }
            // A user name with a password that is no token, and no password file.
            (Some(_), None, Some(_)) => Err(self.refuse(peer, ReasonCode::BadUserNameOrPassword).await),
            // A user name that nothing can check names nobody.
            _ if policy.allow_anonymous => Ok(Identity::default()),
            _ => Err(self.refuse(peer, ReasonCode::NotAuthorized).await),
        }
    }

    /// `identity` (from a token or a certificate), unless the CONNECT names another user:
    /// its user name may be empty or repeat the identity's.
    async fn matching_user_name(
        &self,
        connect: &Connect,
        peer: IpAddr,
        identity: Identity,
    ) -> Result<Identity, ReasonCode> {
        let other = connect
            .username
            .as_deref()
            .is_some_and(|name| !name.is_empty() && Some(name) != identity.username.as_deref());
        if other {
            info!(%peer, "refused: the user name is not the one the token or certificate names");
            return Err(self.refuse(peer, ReasonCode::BadUserNameOrPassword).await);
        }
        Ok(identity)
    }

    async fn refuse(&self, peer: IpAddr, reason: ReasonCode) -> ReasonCode {
        Metrics::inc(&self.metrics.auth_failures_total);
        let delay = self
            .failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .record(peer, Instant::now());
        warn!(%peer, ?reason, delay_ms = delay.as_millis() as u64, "authentication failed");
        tokio::time::sleep(delay).await;
        reason
    }

    /// Whether `identity`, connected as `client_id`, may publish to `topic`. `$SYS/` is the
    /// broker's alone; other `$` topics are open as any topic is, unless an ACL is in force
    /// (whose wildcard rules do not reach them: a rule must name them).
    pub fn may_publish(&self, identity: &Identity, client_id: &str, topic: &str) -> bool {
        let allowed = self.policy().permits_publish(identity, client_id, topic);
        if !allowed {
            Metrics::inc(&self.metrics.acl_denials_total);
        }
        allowed
    }

    /// Whether `identity`, connected as `client_id`, may subscribe to `filter`.
    pub fn may_subscribe(&self, identity: &Identity, client_id: &str, filter: &str) -> bool {
        let shared = match tabmq_protocol::topic::SharedFilter::parse(filter) {
            Ok(Some(shared)) => shared.filter,
            _ => filter,
        };
        let by_token = identity
            .grants
            .as_ref()
            .and_then(|grants| grants.subscribe.as_ref())
            .is_none_or(|filters| filters.iter().any(|granted| filters::covers(granted, shared)));
        let allowed = by_token
            && match &self.policy().acl {
                Some(acl) => acl.may_read(subject(identity, client_id), filter),
                None => true,
            };
        if !allowed {
            Metrics::inc(&self.metrics.acl_denials_total);
        }
        allowed
    }
}

/// The verifier `config` describes, its key files read.
fn load_jwt(config: &JwtConfig) -> Result<JwtVerifier, SecurityError> {
    let secret = match path_of(&config.secret_file) {
        Some(path) => Some(read("auth.jwt.secret_file", &path)?),
        None => None,
    };
    let key_file = match path_of(&config.public_key_file) {
        Some(path) => Some(std::fs::read(&path).map_err(|source| SecurityError::Read {
            option: "auth.jwt.public_key_file",
            path: path.clone(),
            source,
        })?),
        None => None,
    };
    JwtVerifier::new(config, secret.as_deref(), key_file.as_deref()).map_err(|reason| SecurityError::Parse {
        option: "auth.jwt",
        path: path_of(&config.public_key_file)
            .or_else(|| path_of(&config.secret_file))
            .unwrap_or_else(|| "(tabmq.toml)".into()),
        reason,
    })
}

fn subject<'a>(identity: &'a Identity, client_id: &'a str) -> Subject<'a> {
    Subject {
        username: identity.username.as_deref(),
        client_id,
    }
}
