//! JSON Web Tokens for browser apps: the app's backend mints a token for its user, and
//! the page passes it as the MQTT password. The user name is the `sub` claim. Keys are
//! `auth.jwt.secret`/`secret_file` (HS256) or `public_key_file` (a PEM public key: RS256,
//! ES256 or EdDSA by its type; or a JWKS file, each key's algorithm from its `alg` or
//! type, chosen by the token's `kid`). Each key accepts exactly its own algorithm, so
//! `alg: none` and algorithm confusion (an RSA public key used as an HMAC secret) fail.
//! `exp` and `sub` are required; `iss` and `aud` when configured. A token may carry
//! `publish` and `subscribe` lists of topic filters: they then bound what the
//! connection may do, on top of the ACL file.

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use serde::Deserialize;

use crate::config::Jwt as JwtConfig;

/// What a verified token says.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Claims {
    /// The user.
    pub sub: String,
    /// Expiry, seconds since the Unix epoch.
    pub exp: u64,
    /// Topic filters the connection may publish to, when the token limits it.
    #[serde(default)]
    pub publish: Option<Vec<String>>,
    /// Topic filters the connection may subscribe within, when the token limits it.
    #[serde(default)]
    pub subscribe: Option<Vec<String>>,
}

/// A key and the one algorithm it verifies.
struct Key {
    id: Option<String>,
    algorithm: Algorithm,
    key: DecodingKey,
}

/// Verifies tokens against the configured keys.
pub struct JwtVerifier {
    keys: Vec<Key>,
    issuer: Option<String>,
    audience: Option<String>,
    leeway_secs: u64,
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("keys", &self.keys.len())
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .finish()
    }
}

/// Whether a password looks like a JWT (three base64url parts): such passwords are
/// checked as tokens when JWT authentication is configured.
pub fn looks_like_jwt(password: &[u8]) -> bool {
    let parts: Vec<&[u8]> = password.split(|b| *b == b'.').collect();
    parts.len() == 3
        && parts[..2].iter().all(|part| !part.is_empty())
        && parts.iter().all(|part| {
            part.iter()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
        })
}

fn key_of_jwk(jwk: &Jwk) -> Result<Key, String> {
    let algorithm = match (&jwk.common.key_algorithm, &jwk.algorithm) {
        (Some(alg), _) => {
            Algorithm::try_from(*alg).map_err(|_| format!("unsupported key algorithm {alg}"))?
        }
        (None, AlgorithmParameters::RSA(_)) => Algorithm::RS256,
        (None, AlgorithmParameters::EllipticCurve(ec)) if ec.curve == EllipticCurve::P256 => Algorithm::ES256,
        (None, AlgorithmParameters::OctetKeyPair(_)) => Algorithm::EdDSA,
        (None, _) => return Err("a key without `alg` whose type is not RSA, P-256 or Ed25519".into()),
    };
    if matches!(algorithm, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512) {
        return Err("symmetric keys do not belong in a public key set".into());
    }
    let key = DecodingKey::from_jwk(jwk).map_err(|error| error.to_string())?;
    Ok(Key {
        id: jwk.common.key_id.clone(),
        algorithm,
        key,
    })
}

fn key_of_pem(pem: &[u8]) -> Result<Key, String> {
    type Parse = fn(&[u8]) -> jsonwebtoken::errors::Result<DecodingKey>;
    let attempts: [(Algorithm, Parse); 3] = [
        (Algorithm::RS256, DecodingKey::from_rsa_pem),
        (Algorithm::ES256, DecodingKey::from_ec_pem),
        (Algorithm::EdDSA, DecodingKey::from_ed_pem),
    ];
    attempts
        .into_iter()
        .find_map(|(algorithm, parse)| {
            parse(pem).ok().map(|key| Key {
                id: None,
                algorithm,
                key,
            })
        })
        .ok_or_else(|| "not an RSA, EC (P-256) or Ed25519 public key in PEM form".to_owned())
}

impl JwtVerifier {
    /// The verifier the settings describe; `secret_text` and `key_file` are the contents
    /// of `secret_file` and `public_key_file` when those are set.
    pub fn new(
        config: &JwtConfig,
        secret_text: Option<&str>,
        key_file: Option<&[u8]>,
    ) -> Result<Self, String> {
        let keys = if let Some(secret) =
            secret_text.or((!config.secret.is_empty()).then_some(config.secret.as_str()))
        {
            let secret = secret.trim_end_matches(['\n', '\r']);
            if secret.len() < 32 {
                return Err("the HS256 secret must be at least 32 bytes".into());
            }
            vec![Key {
                id: None,
                algorithm: Algorithm::HS256,
                key: DecodingKey::from_secret(secret.as_bytes()).map_err(|error| error.to_string())?,
            }]
        } else if let Some(file) = key_file {
            if file.trim_ascii_start().starts_with(b"{") {
                let set: JwkSet =
                    serde_json::from_slice(file).map_err(|error| format!("not a JWKS: {error}"))?;
                set.keys.iter().map(key_of_jwk).collect::<Result<Vec<_>, _>>()?
            } else {
                vec![key_of_pem(file)?]
            }
        } else {
            return Err("no key: set secret, secret_file or public_key_file".into());
        };
        if keys.is_empty() {
            return Err("the key set is empty".into());
        }
        Ok(Self {
            keys,
            issuer: (!config.issuer.is_empty()).then(|| config.issuer.clone()),
            audience: (!config.audience.is_empty()).then(|| config.audience.clone()),
            leeway_secs: config.leeway_secs,
        })
    }

    /// The clock skew allowed on `exp`, in seconds.
    pub fn leeway_secs(&self) -> u64 {
        self.leeway_secs
    }

    /// The claims of `token` if its signature, algorithm, expiry, issuer and audience hold.
    pub fn verify(&self, token: &str) -> Result<Claims, String> {
        let header = decode_header(token).map_err(|error| error.to_string())?;
        let key = self
            .keys
            .iter()
            .filter(|key| header.kid.is_none() || key.id.is_none() || key.id == header.kid)
            .find(|key| key.algorithm == header.alg)
            .ok_or_else(|| format!("no key for algorithm {:?}", header.alg))?;
        let mut validation = Validation::new(key.algorithm);
        validation.leeway = self.leeway_secs;
        let mut required = vec!["exp", "sub"];
        if let Some(issuer) = &self.issuer {
            validation.set_issuer(&[issuer]);
            required.push("iss");
        }
        match &self.audience {
            Some(audience) => {
                validation.set_audience(&[audience]);
                required.push("aud");
            }
            None => validation.validate_aud = false,
        }
        validation.set_required_spec_claims(&required);
        decode::<Claims>(token, &key.key, &validation)
            .map(|data| data.claims)
            .map_err(|error| error.to_string())
    }
}
