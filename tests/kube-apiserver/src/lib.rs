//! An in-process Kubernetes API server for poolgate's tests: stateful, watchable, and faithful
//! enough that real `kubectl` and unmodified kube-rs clients, watchers, reflectors and
//! `Controller`s run against it. It is a test harness and ships in no image.
//!
//! ```no_run
//! # async fn demo() {
//! use poolgate_kube_apiserver::TestApiServer;
//!
//! let server = TestApiServer::builder()
//!     .job_image("poolgate/operator", "/path/to/target/debug/poolgate-operator")
//!     .start()
//!     .await
//!     .expect("start");
//! let client = server.client(); // a kube::Client, default namespace "default"
//! // kubectl --kubeconfig <server.kubeconfig_path()> get ns
//! // ... create CRDs and objects, run the operator against `client` ...
//! let logs = server.job_logs("default", "some-job");
//! # let _ = (client, logs);
//! # }
//! ```
//!
//! The crate enables k8s-openapi's `v1_37` feature (the newest of k8s-openapi 0.29); crates that
//! use it must enable the same one. The server reports itself as Kubernetes v1.37.
//!
//! # What it implements
//!
//! - **HTTP** on `127.0.0.1`, a free port (no TLS, no authentication, no authorization).
//! - **Discovery**: `/version`, `/api`, `/api/v1`, `/apis`, `/apis/{group}`,
//!   `/apis/{group}/{version}` (legacy documents with namespaced, kind, verbs, short names,
//!   categories, `status` subresources), and aggregated discovery (`apidiscovery.k8s.io/v2`) at
//!   `/api` and `/apis` for clients that ask for it (kubectl, kube-rs `run_aggregated`). Built-in types: core `namespaces`, `secrets`, `configmaps`, `events`;
//!   `events.k8s.io/v1` events; `batch/v1` jobs; `coordination.k8s.io/v1` leases;
//!   `apiextensions.k8s.io/v1` customresourcedefinitions. A CRD's resource is served as soon as
//!   the CRD is created (its status says `Established` at once) and disappears, with all its
//!   objects, when the CRD is deleted.
//! - **OpenAPI**: `/openapi/v3` answers an index with no paths; `/openapi/v2` is 404. kubectl
//!   works with `--validate=false` (and uses JSON merge patch for custom resources, as always).
//! - **Verbs**: get, list (label selectors with the full set syntax, field selectors, `limit` /
//!   `continue`), create (`generateName`, `dryRun=All`), update (409 on a stale
//!   `resourceVersion`), delete (`propagationPolicy`, `preconditions`), deletecollection, patch as
//!   JSON merge patch, JSON patch (with `test`; a `test` of `null` passes on an absent path, as in
//!   Go), strategic merge patch for the built-in kinds (merge keys of the fields they use; 415 for
//!   custom resources, as the real server), server-side apply (`fieldManager`, `force`, 409
//!   conflicts with `FieldManagerConflict` causes, removal of fields a manager stops applying),
//!   and the `status` subresource (status writes change only status, other writes never do).
//! - **Content types**: JSON (and YAML for apply). `Accept: ...;as=Table` gets server-side
//!   `Table`s (CRD `additionalPrinterColumns`, a small JSONPath subset); `as=PartialObjectMetadata`
//!   gets metadata-only objects, lists and watch events.
//! - **Watch**: ADDED/MODIFIED/DELETED/BOOKMARK/ERROR as newline-delimited JSON, from a
//!   `resourceVersion` (history replay) or from now with the current objects first,
//!   `allowWatchBookmarks` (a bookmark each idle second), `sendInitialEvents` (ending with the
//!   `k8s.io/initial-events-end` bookmark), `timeoutSeconds` (default 30 min), selectors (objects
//!   leaving a selector are sent as DELETED, entering as ADDED), and, as the real server, a 200
//!   with one ERROR event carrying a 410 `Expired` Status for a compacted `resourceVersion`.
//! - **Semantics**: one global, monotonically increasing resourceVersion; no-op writes do not
//!   bump it; `uid`, `creationTimestamp`; `metadata.generation` bumped on changes outside
//!   `metadata` (and outside `status` where status is a subresource) and when deletion starts;
//!   finalizers (`deletionTimestamp`, no new finalizers while deleting, removal when the list
//!   empties); owner-reference garbage collection (background; foreground with the
//!   `foregroundDeletion` finalizer; orphan; batch/v1 Jobs orphan by default); namespace
//!   termination (`Terminating`, content deleted, 403 for new content; `default`, `kube-system`,
//!   `kube-public` cannot be deleted); Secret `stringData`; Job defaults and template
//!   immutability; CRD structural schemas (pruning, defaulting, validation of types, `required`,
//!   `enum`, bounds) with 422 `Status` errors; `metav1.Status` bodies for every error.
//! - **Jobs**: a runner that executes each Job's container as a local process; see [`jobs`].
//!
//! # Deliberate simplifications (where it differs from a real server)
//!
//! - Storage is in memory; all versions of a CRD share one stored form (conversion strategy
//!   `None`), and `apiVersion` is rewritten to the requested version.
//! - Managed fields: ownership is per map leaf and, in associative lists (CRD
//!   `x-kubernetes-list-type: map`; the built-ins' `containers`, `env`, `volumes`, `volumeMounts`,
//!   `conditions`, `ownerReferences`, ...), per element field; all other lists (including sets
//!   such as `finalizers`) are atomic. Fields are kept in real `FieldsV1` form (`f:`, `k:`),
//!   without `.` markers. Different operations (Apply/Update) of one manager never conflict.
//! - Lists always serve the latest state: `resourceVersion`/`resourceVersionMatch` on a list are
//!   ignored, and a `continue` token pages through the current state (it expires, with 410, when
//!   the history it started at is compacted).
//! - Field selectors work on any dotted path (the real server allows only per-type fields).
//! - Garbage collection runs synchronously inside the deleting request (dependents are gone when
//!   the owner's DELETE returns); an object created with owner references only to objects that do
//!   not exist is deleted right after its creation (its create still answers 201).
//! - Deleting a CRD removes its objects at once, without waiting for their finalizers.
//! - The two Event APIs (`v1` and `events.k8s.io/v1`) are stored separately.
//! - Request bodies in protobuf or CBOR get 415: kubectl's imperative `create secret|configmap|
//!   namespace|job` (typed clients sending protobuf) do not work; `kubectl apply -f` does.
//! - No pods, deployments, services, RBAC, admission webhooks, CEL validation, `pattern`/`format`
//!   checks, field validation (`fieldValidation` is ignored), or TLS.
//!   Updates (PUT) never create objects.
//! - Event history for watch resumption is bounded (see [`Builder::watch_history`]);
//!   [`TestApiServer::compact`] expires all of it on demand, like an etcd compaction.

pub mod admission;
pub mod apply;
pub mod delete;
pub mod discovery;
pub mod error;
pub mod fields;
pub mod gc;
pub mod http;
pub mod jobs;
pub mod list;
pub mod listkeys;
pub mod meta;
pub mod ops;
pub mod patch;
pub mod registry;
pub mod schema;
pub mod selector;
pub mod store;
pub mod table;
pub mod watch;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde_json::json;
use tokio::task::JoinHandle;

use crate::admission::Target;
use crate::jobs::JobRunner;
use crate::store::State;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Binding or configuring the listener failed.
    #[error("I/O error starting the test API server: {0}")]
    Io(#[from] std::io::Error),
    /// The kubeconfig could not be written.
    #[error("cannot write kubeconfig: {0}")]
    Kubeconfig(String),
    /// Bootstrapping the default namespaces failed.
    #[error("cannot create default namespace: {0}")]
    Bootstrap(#[from] error::ApiError),
}

/// Options for [`TestApiServer`].
#[derive(Debug, Clone)]
pub struct Builder {
    job_images: HashMap<String, PathBuf>,
    watch_history: usize,
    bookmark_interval: Duration,
    job_backoff: Duration,
}

impl Default for Builder {
    fn default() -> Self {
        Self {
            job_images: HashMap::new(),
            watch_history: 10_000,
            bookmark_interval: Duration::from_secs(1),
            job_backoff: Duration::from_millis(100),
        }
    }
}

impl Builder {
    /// Maps a container image (with or without tag) to the local binary that plays it.
    pub fn job_image(mut self, image: impl Into<String>, binary: impl Into<PathBuf>) -> Self {
        self.job_images.insert(image.into(), binary.into());
        self
    }

    /// How many events are kept for watches to resume from (default 10 000).
    pub fn watch_history(mut self, events: usize) -> Self {
        self.watch_history = events;
        self
    }

    /// How often idle watches with bookmarks get one (default 1 s).
    pub fn bookmark_interval(mut self, every: Duration) -> Self {
        self.bookmark_interval = every;
        self
    }

    /// First delay before a failed Job is retried; doubles per failure (default 100 ms).
    pub fn job_backoff(mut self, delay: Duration) -> Self {
        self.job_backoff = delay;
        self
    }

    /// Starts the server on the current tokio runtime.
    pub async fn start(self) -> Result<TestApiServer, StartError> {
        let dir = tempfile::Builder::new().prefix("poolgate-kube-apiserver").tempdir()?;
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let url = format!("http://{addr}");
        let kubeconfig = dir.path().join("kubeconfig");
        std::fs::write(&kubeconfig, kubeconfig_yaml(&url)).map_err(|e| StartError::Kubeconfig(e.to_string()))?;
        let workdir = dir.path().join("jobs");
        std::fs::create_dir_all(&workdir)?;

        let state = Arc::new(Mutex::new(State::new(self.watch_history)));
        bootstrap(&mut state.lock())?;
        let (shutdown, shutdown_rx) = tokio::sync::watch::channel(false);
        let app = Arc::new(http::App {
            state: state.clone(),
            watch: watch::WatchConfig { bookmark_interval: self.bookmark_interval },
            shutdown: shutdown_rx.clone(),
        });
        let mut stop = shutdown_rx;
        let serve = tokio::spawn(async move {
            let graceful = async move {
                let _ = stop.changed().await;
            };
            if let Err(e) = axum::serve(listener, http::router(app)).with_graceful_shutdown(graceful).await {
                tracing::error!("test API server stopped: {e}");
            }
        });
        let jobs = JobRunner::new(state.clone(), kubeconfig.clone(), workdir, self.job_backoff);
        jobs.set_images(self.job_images);
        let runner = jobs.clone().spawn();
        tracing::info!(%url, "test API server started");
        Ok(TestApiServer { url, state, jobs, kubeconfig, shutdown, tasks: vec![serve, runner], _dir: dir })
    }
}

fn kubeconfig_yaml(url: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: test\n  cluster:\n    server: {url}\n\
         contexts:\n- name: test\n  context:\n    cluster: test\n    user: test\n    namespace: default\n\
         current-context: test\nusers:\n- name: test\n  user: {{}}\n"
    )
}

/// The namespaces every cluster has.
fn bootstrap(state: &mut State) -> Result<(), error::ApiError> {
    let rt =
        state.type_by_key("namespaces").ok_or_else(|| error::ApiError::Internal("namespaces type missing".into()))?;
    let t = Target { rt, version: "v1".into(), ns: String::new() };
    let opts = ops::WriteOpts { manager: "kube-apiserver".into(), status: false, dry_run: false };
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        ops::create(state, &t, json!({"metadata": {"name": ns}}), &opts)?;
    }
    Ok(())
}

/// A running test API server. Dropping it stops the server, open watches and Job processes.
pub struct TestApiServer {
    url: String,
    state: Arc<Mutex<State>>,
    jobs: JobRunner,
    kubeconfig: PathBuf,
    shutdown: tokio::sync::watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl TestApiServer {
    /// Starts a server with default options.
    ///
    /// # Panics
    /// If the server cannot start (no loopback socket or temp dir): a test cannot go on then.
    pub async fn start() -> Self {
        Self::builder().start().await.expect("start the test API server")
    }

    /// Options for a server.
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// Base URL, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A kube client for this server, default namespace `default`.
    ///
    /// # Panics
    /// Never in practice: the URL is always valid.
    pub fn client(&self) -> kube::Client {
        let uri = self.url.parse().expect("server URL is a valid URI");
        let config = kube::Config::new(uri);
        kube::Client::try_from(config).expect("kube client for a plain-HTTP URL")
    }

    /// A kubeconfig file for this server (context `test`, namespace `default`), for kubectl and for
    /// processes that build their client from `KUBECONFIG`.
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig
    }

    /// Replaces the Job image table (image -> local binary).
    pub fn set_job_images(&self, images: HashMap<String, PathBuf>) {
        self.jobs.set_images(images);
    }

    /// Captured output of all attempts of a Job (stdout and stderr, by line), plus lines from the
    /// runner itself prefixed `[job-runner]`.
    pub fn job_logs(&self, namespace: &str, name: &str) -> String {
        self.jobs.logs(namespace, name)
    }

    /// The current resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.state.lock().rv()
    }

    /// Forgets the event history, as etcd compaction does: watches from any earlier
    /// resourceVersion get a 410 Expired.
    pub fn compact(&self) {
        self.state.lock().compact();
    }
}

impl Drop for TestApiServer {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        for t in &self.tasks {
            t.abort();
        }
        self.jobs.stop();
    }
}
