//! The operator's connection to the master: the operator's key (the local admin's by
//! default), the master's NATS address and key, found through the master's config on
//! this host.

use crate::config::{ExternalAuth, MasterConfig, NatsMode};
use brine_proto::envelope::{open, seal, Stamp};
use brine_proto::msg::{Ctl, CtlOp, CtlReply, CtlResult};
use brine_proto::Subjects;
use ed25519_dalek::{SigningKey, VerifyingKey};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Why the CLI could not talk to the master.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{0}")]
    Config(#[from] crate::config::ConfigError),
    #[error("cannot read the key of operator {operator}: {source} ({hint})")]
    Key { operator: String, source: brine_proto::keys::KeyError, hint: &'static str },
    #[error("cannot read the master's key: {0} (has brine-master been started with this config?)")]
    MasterKey(brine_proto::keys::KeyError),
    #[error("cannot find the master's NATS address in {path}: {source} (is brine-master running?)")]
    NoUrl { path: std::path::PathBuf, source: std::io::Error },
    #[error("cannot reach the master's NATS at {url}: {reason} (is brine-master running?)")]
    Connect { url: String, reason: String },
    #[error("the master did not answer within {0:?} (is brine-master running?)")]
    Timeout(Duration),
    #[error(
        "the NATS server refused this connection: {reason} (is {operator} the name the key is configured under in \
         the master's [operators]?)"
    )]
    Refused { operator: String, reason: String },
    #[error("no master is listening on {url} (is brine-master running?)")]
    NoMaster { url: String },
    #[error("bad answer from the master: {0}")]
    BadReply(String),
}

/// A connected operator.
pub struct Operator {
    pub client: async_nats::Client,
    key: SigningKey,
    master: VerifyingKey,
    pub subjects: Subjects,
    inbox: String,
    url: String,
    name: String,
    refusal: Arc<Refusal>,
}

/// A permissions error the server sent on this connection.
#[derive(Default)]
struct Refusal {
    reason: Mutex<Option<String>>,
    arrived: tokio::sync::Notify,
}

impl Refusal {
    fn get(&self) -> Option<String> {
        self.reason.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Resolves when the server has refused something on this connection.
    async fn wait(&self) -> String {
        loop {
            if let Some(reason) = self.get() {
                return reason;
            }
            self.arrived.notified().await;
        }
    }
}

impl Operator {
    /// Connects to the master configured by `cfg` as `operator` with the key at
    /// `key_file` (default: `<data_dir>/operators/<operator>.pem`).
    pub async fn connect(cfg: &MasterConfig, operator: &str, key_file: Option<&Path>) -> Result<Operator, ClientError> {
        let key_file = key_file
            .map(Path::to_path_buf)
            .unwrap_or_else(|| cfg.admin_key_path().with_file_name(format!("{operator}.pem")));
        let hint = if operator == crate::acl::ADMIN && key_file == cfg.admin_key_path() {
            "the admin's brine CLI runs on the master host, as the user that runs brine-master"
        } else {
            "give the operator's private key with --key FILE"
        };
        let key = brine_proto::keys::load_key(&key_file).map_err(|source| ClientError::Key {
            operator: operator.to_string(),
            source,
            hint,
        })?;
        let master =
            brine_proto::keys::load_public_key(&cfg.data_dir.join("master.pub")).map_err(ClientError::MasterKey)?;
        let (url, opts) = match &cfg.nats {
            NatsMode::Embedded { .. } => {
                let path = cfg.client_url_path();
                let url = std::fs::read_to_string(&path)
                    .map_err(|source| ClientError::NoUrl { path: path.clone(), source })?
                    .trim()
                    .to_string();
                let seed =
                    crate::nats::nkey_seed(&key).map_err(|reason| ClientError::Connect { url: url.clone(), reason })?;
                (url, async_nats::ConnectOptions::with_nkey(seed))
            }
            NatsMode::External { url, auth, .. } => {
                let opts = match auth {
                    ExternalAuth::None => async_nats::ConnectOptions::new(),
                    ExternalAuth::UserPassword { user, password } => {
                        async_nats::ConnectOptions::with_user_and_password(user.clone(), password.clone())
                    }
                    ExternalAuth::CredsFile(p) => async_nats::ConnectOptions::with_credentials_file(p)
                        .await
                        .map_err(|e| ClientError::Connect { url: url.clone(), reason: e.to_string() })?,
                };
                (url.clone(), opts)
            }
        };
        let inbox = cfg.subjects.operator_inbox(operator);
        // The server refuses a subscription outside this operator's inbox (the name
        // does not go with the key): no answer could ever arrive, so say why at once.
        let refusal: Arc<Refusal> = Arc::default();
        let seen = refusal.clone();
        let opts = opts.event_callback(move |ev| {
            let seen = seen.clone();
            async move {
                if let async_nats::Event::ServerError(e) = ev {
                    if e.to_string().to_lowercase().contains("permission") {
                        *seen.reason.lock().unwrap_or_else(|e| e.into_inner()) = Some(e.to_string());
                        seen.arrived.notify_one();
                    }
                }
            }
        });
        let opts = match cfg.tls_ca_path() {
            Some(path) => {
                let roots = brine_proto::tls::certs_from_file(&path)
                    .map_err(|e| ClientError::Connect { url: url.clone(), reason: e.to_string() })?;
                let config = brine_proto::tls::client_config(&roots)
                    .map_err(|e| ClientError::Connect { url: url.clone(), reason: e.to_string() })?;
                opts.tls_client_config(config).require_tls(true)
            }
            None => opts,
        };
        let client = opts
            .custom_inbox_prefix(&inbox)
            .name("brine")
            .connection_timeout(Duration::from_secs(5))
            .connect(url.as_str())
            .await
            .map_err(|e| ClientError::Connect { url: url.clone(), reason: e.to_string() })?;
        Ok(Operator {
            client,
            key,
            master,
            subjects: cfg.subjects.clone(),
            inbox,
            url,
            name: operator.to_string(),
            refusal,
        })
    }

    /// The master's public key (what the master's events and answers are signed with).
    pub fn master_key(&self) -> &VerifyingKey {
        &self.master
    }

    /// The operator's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Resolves when the NATS server refuses something on this connection (a
    /// subscription outside the operator's permissions), with the server's words.
    pub async fn refused(&self) -> String {
        self.refusal.wait().await
    }

    /// A fresh subject in this operator's inbox, for streamed answers.
    pub fn stream_subject(&self) -> String {
        format!("{}.stream.{}", self.inbox, brine_proto::envelope::random_id())
    }

    /// Sends a request and waits for the master's verified answer.
    pub async fn request(&self, op: CtlOp) -> Result<CtlResult, ClientError> {
        let subject = self.subjects.ctl(op.name());
        let ctl = Ctl { stamp: Stamp::random(Duration::from_secs(60)), op };
        let bytes = seal(&ctl, &self.key).map_err(|e| ClientError::BadReply(e.to_string()))?;
        let wait = Duration::from_secs(15);
        let answer = tokio::select! {
            answer = tokio::time::timeout(wait, self.client.request(subject, bytes.into())) => answer,
            reason = self.refusal.wait() => return Err(ClientError::Refused { operator: self.name.clone(), reason }),
        };
        let msg = match answer {
            Err(_) => return Err(self.timeout(wait)),
            Ok(Err(e)) if e.kind() == async_nats::RequestErrorKind::NoResponders => {
                return Err(ClientError::NoMaster { url: self.url.clone() })
            }
            Ok(Err(e)) if e.kind() == async_nats::RequestErrorKind::TimedOut => return Err(self.timeout(wait)),
            Ok(Err(e)) => return Err(ClientError::Connect { url: self.url.clone(), reason: e.to_string() }),
            Ok(Ok(m)) => m,
        };
        let reply = self.open_reply(&msg.payload)?;
        if reply.request != ctl.stamp.id {
            return Err(ClientError::BadReply("the answer is for another request".into()));
        }
        Ok(reply.result)
    }

    /// No answer came: explained by the server's refusal if there was one.
    fn timeout(&self, wait: Duration) -> ClientError {
        match self.refusal.get() {
            Some(reason) => ClientError::Refused { operator: self.name.clone(), reason },
            None => ClientError::Timeout(wait),
        }
    }

    /// Verifies a message from the master.
    pub fn open_reply(&self, payload: &[u8]) -> Result<CtlReply, ClientError> {
        open::<CtlReply>(payload, &self.master, brine_proto::time::now_ms())
            .map_err(|e| ClientError::BadReply(e.to_string()))
    }
}
