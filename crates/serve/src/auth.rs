//! Who may connect: SCRAM-SHA-256 against the config's users, trust when
//! there are none (loopback only, checked by [`crate::Server::bind`]), the
//! refusal of an address after `limits.login_attempts` failed logins
//! ([`Logins`]), and the refusal of a connection over the session limit.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use base64::Engine as _;
use datafusion_postgres::pgwire::api::auth::noop::NoopStartupHandler;
use datafusion_postgres::pgwire::api::auth::sasl::scram::{gen_salted_password, ScramAuth};
use datafusion_postgres::pgwire::api::auth::sasl::SASLAuthStartupHandler;
use datafusion_postgres::pgwire::api::auth::{
    AuthSource, DefaultServerParameterProvider, LoginInfo, Password, StartupHandler,
};
use datafusion_postgres::pgwire::api::{ClientInfo, PgWireConnectionState};
use datafusion_postgres::pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use datafusion_postgres::pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use futures::Sink;

use crate::access::{AccessLog, Event};
use crate::{Error, Result, User};

const ITERATIONS: usize = 4096;

/// A `password_hash` for a password (random salt), for the config's users.
pub fn hash_password(password: &str) -> String {
    let salt: [u8; 16] = rand::random();
    let salted = gen_salted_password(password, &salt, ITERATIONS);
    let b64 = base64::engine::general_purpose::STANDARD;
    format!(
        "scram-sha-256${ITERATIONS}${}${}",
        b64.encode(salt),
        b64.encode(salted)
    )
}

/// Salt and salted password of a `password_hash`.
fn parse_hash(user: &str, h: &str) -> Result<(Vec<u8>, Vec<u8>)> {
    let parts: Vec<&str> = h.split('$').collect();
    let b64 = base64::engine::general_purpose::STANDARD;
    let err = |reason: String| Error::PasswordHash {
        user: user.to_string(),
        reason,
    };
    match parts.as_slice() {
        ["scram-sha-256", iters, salt, salted] => {
            if iters.parse::<usize>().ok() != Some(ITERATIONS) {
                return Err(err(format!(
                    "password_hash must use {ITERATIONS} iterations"
                )));
            }
            Ok((
                b64.decode(salt)
                    .map_err(|e| err(format!("salt is not base64: {e}")))?,
                b64.decode(salted)
                    .map_err(|e| err(format!("salted password is not base64: {e}")))?,
            ))
        }
        _ => Err(err(format!(
            "password_hash is not scram-sha-256${ITERATIONS}$SALT$KEY"
        ))),
    }
}

/// The config's users as an authentication source; `None` when there are none.
pub(crate) fn users(users: &[User]) -> Result<Option<Arc<dyn AuthSource>>> {
    let mut out = HashMap::new();
    for u in users {
        out.insert(u.name.clone(), parse_hash(&u.name, &u.password_hash)?);
    }
    Ok((!out.is_empty()).then(|| Arc::new(Users(out)) as Arc<dyn AuthSource>))
}

#[derive(Debug)]
struct Users(HashMap<String, (Vec<u8>, Vec<u8>)>);

#[async_trait]
impl AuthSource for Users {
    async fn get_password(&self, login: &LoginInfo) -> PgWireResult<Password> {
        let user = login.user().unwrap_or_default();
        match self.0.get(user) {
            Some((salt, salted)) => Ok(Password::new(Some(salt.clone()), salted.clone())),
            // The same answer as a wrong password: names are not disclosed.
            None => Err(PgWireError::InvalidPassword(user.to_string())),
        }
    }
}

/// Failed logins per client address: after `limits.login_attempts` of
/// them, the address is refused at once (no password exchange, FATAL 28000)
/// until `limits.login_lockout_secs` after its last failure; a failure older
/// than that is forgotten, a login that succeeds forgets them all. Every
/// failure and refusal is logged (warn) with the address and user.
pub(crate) struct Logins {
    attempts: u32,
    lockout: Duration,
    failed: Mutex<HashMap<IpAddr, (u32, Instant)>>,
}

impl Logins {
    pub(crate) fn new(limits: &crate::Limits) -> Self {
        Logins {
            attempts: limits.login_attempts.max(1),
            lockout: Duration::from_secs(limits.login_lockout_secs),
            failed: Mutex::new(HashMap::new()),
        }
    }

    fn table(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, (u32, Instant)>> {
        self.failed.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How long `ip` is still refused, with its count of failures.
    fn refused(&self, ip: IpAddr) -> Option<(u32, Duration)> {
        let mut t = self.table();
        let (n, last) = *t.get(&ip)?;
        let since = last.elapsed();
        if since >= self.lockout {
            t.remove(&ip);
            return None;
        }
        (n >= self.attempts).then(|| (n, self.lockout - since))
    }

    /// Counts a failure of `ip`; returns its count.
    fn failure(&self, ip: IpAddr) -> u32 {
        let mut t = self.table();
        let entry = t.entry(ip).or_insert((0, Instant::now()));
        if entry.1.elapsed() >= self.lockout {
            entry.0 = 0;
        }
        entry.0 += 1;
        entry.1 = Instant::now();
        // Bounded: addresses whose failures are forgotten leave the table.
        if t.len() > 100_000 {
            let lockout = self.lockout;
            t.retain(|_, (_, last)| last.elapsed() < lockout);
        }
        t[&ip].0
    }

    fn success(&self, ip: IpAddr) {
        self.table().remove(&ip);
    }
}

/// A startup handler: SCRAM when users are configured (with the client's
/// address, for [`Logins`]), trust otherwise; either records the login in
/// the access log and remembers who logged in.
pub(crate) struct Startup {
    how: How,
    peer: SocketAddr,
    access: Option<Arc<AccessLog>>,
    who: Mutex<Option<String>>,
}

enum How {
    Scram {
        handler: Box<SASLAuthStartupHandler<DefaultServerParameterProvider>>,
        logins: Arc<Logins>,
    },
    Trust(TrustStartup),
}

impl Startup {
    /// The user who logged in on this connection, once one has.
    pub(crate) fn user(&self) -> Option<String> {
        self.who.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

pub(crate) struct TrustStartup;

impl NoopStartupHandler for TrustStartup {}

/// The startup handler of one connection: a SASL exchange keeps its state in
/// the handler.
pub(crate) fn startup(
    users: Option<&Arc<dyn AuthSource>>,
    peer: SocketAddr,
    logins: Arc<Logins>,
    access: Option<Arc<AccessLog>>,
) -> Startup {
    let how = match users {
        None => How::Trust(TrustStartup),
        Some(users) => {
            let mut scram = ScramAuth::new(users.clone());
            scram.set_iterations(ITERATIONS);
            How::Scram {
                handler: Box::new(
                    SASLAuthStartupHandler::new(
                        Arc::new(DefaultServerParameterProvider::default()),
                    )
                    .with_scram(scram),
                ),
                logins,
            }
        }
    };
    Startup {
        how,
        peer,
        access,
        who: Mutex::new(None),
    }
}

#[async_trait]
impl StartupHandler for Startup {
    async fn on_startup<C>(
        &self,
        client: &mut C,
        message: PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: std::fmt::Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let peer = self.peer;
        let user = |client: &C| {
            client
                .metadata()
                .get("user")
                .cloned()
                .unwrap_or_else(|| "?".into())
        };
        let logged_in = |client: &C| {
            let name = user(client);
            if let Some(log) = &self.access {
                log.record(&name, peer, &Event::Login);
            }
            *self.who.lock().unwrap_or_else(|e| e.into_inner()) = Some(name);
        };
        let (handler, logins) = match &self.how {
            How::Trust(h) => {
                let result = h.on_startup(client, message).await;
                if result.is_ok() && matches!(client.state(), PgWireConnectionState::ReadyForQuery)
                {
                    logged_in(client);
                }
                return result;
            }
            How::Scram { handler, logins } => (handler, logins),
        };
        if let PgWireFrontendMessage::Startup(_) = &message {
            if let Some((n, wait)) = logins.refused(peer.ip()) {
                let who = match &message {
                    PgWireFrontendMessage::Startup(s) => {
                        s.parameters.get("user").cloned().unwrap_or_default()
                    }
                    _ => String::new(),
                };
                tracing::warn!(
                    "login refused for user {who:?} from {peer}: {n} failed logins from {}; refused for {} s more",
                    peer.ip(),
                    wait.as_secs()
                );
                return Err(PgWireError::UserError(Box::new(ErrorInfo::new(
                    "FATAL".into(),
                    "28000".into(),
                    format!(
                        "too many failed logins from {}: try again in {} s (limits.login_attempts, limits.login_lockout_secs)",
                        peer.ip(),
                        wait.as_secs().max(1)
                    ),
                ))));
            }
        }
        let result = handler.on_startup(client, message).await;
        match &result {
            Err(PgWireError::InvalidPassword(_)) => {
                let n = logins.failure(peer.ip());
                tracing::warn!(
                    "password authentication failed for user {:?} from {peer} ({n} of {} failed logins from {} within {} s)",
                    user(client),
                    logins.attempts,
                    peer.ip(),
                    logins.lockout.as_secs()
                );
            }
            Ok(()) if matches!(client.state(), PgWireConnectionState::ReadyForQuery) => {
                logins.success(peer.ip());
                tracing::info!("user {:?} logged in from {peer}", user(client));
                logged_in(client);
            }
            _ => {}
        }
        result
    }
}

/// Refuses a connection over the session limit.
pub(crate) struct Full(pub(crate) usize);

#[async_trait]
impl StartupHandler for Full {
    async fn on_startup<C>(
        &self,
        _client: &mut C,
        _message: PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: std::fmt::Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        Err(PgWireError::UserError(Box::new(ErrorInfo::new(
            "FATAL".into(),
            "53300".into(),
            format!(
                "sorry, too many clients already: stmon serve admits {} sessions (limits.max_sessions)",
                self.0
            ),
        ))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_hash_round_trips_and_names_its_mistakes() {
        let h = hash_password("s3cret");
        let (salt, salted) = parse_hash("a", &h).unwrap();
        assert_eq!(salt.len(), 16);
        assert_eq!(salted, gen_salted_password("s3cret", &salt, ITERATIONS));
        assert_ne!(hash_password("s3cret"), h, "salted at random");
        let e = parse_hash("a", "md5abc").unwrap_err();
        assert!(matches!(&e, Error::PasswordHash { user, .. } if user == "a"));
        let e = e.to_string();
        assert!(e.contains("user a") && e.contains("--hash-password"), "{e}");
        let e = parse_hash("a", "scram-sha-256$100$AA==$AA==").unwrap_err();
        assert!(e.to_string().contains("4096 iterations"), "{e}");
    }
}
