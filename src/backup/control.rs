//! The local control socket, `<data.dir>/control.sock`: how `kaas backup` reaches a running
//! server. redb locks the database file for the process that opened it, so a consistent online
//! backup can only be taken by the server itself; the CLI asks it to over this socket.
//!
//! Invariants:
//! - The socket is HTTP/1.1 over a Unix socket with one route, `POST /backup`
//!   (`{"path": "/abs/file.redb"}` or `{}` for a timestamped file in `backup.dir`), answering
//!   the [`BackupSummary`] as JSON or `{"error": "..."}`.
//! - It is mode 0600 and owned by the server's user from the moment it has its name: it is
//!   bound under a temporary name, restricted, then renamed into place. Only that user (and
//!   root) can connect; there is no other authentication.
//! - It is not TCP and never leaves the box. The server removes it when it stops; a stale one
//!   (a crash) is replaced on the next start: the server holds the database lock, so no other
//!   server can be using it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::net::{UnixListener, UnixStream};

use crate::store::Store;
use crate::store::backup::BackupSummary;

/// The socket's file name inside the data directory.
pub const SOCKET_NAME: &str = "control.sock";

const MAX_ANSWER_BYTES: usize = 64 * 1024;

pub fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join(SOCKET_NAME)
}

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("control socket {}: {why}", path.display())]
    Socket { path: PathBuf, why: String },
    #[error("the running kaas refused the backup: {0}")]
    Refused(String),
}

/// Body of `POST /backup`.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupRequest {
    /// Absolute path of the file to write; none: a timestamped file in the backup directory.
    #[serde(default)]
    pub path: Option<PathBuf>,
}

#[derive(Clone)]
struct Ctl {
    store: Arc<Store>,
    backup_dir: PathBuf,
}

/// The running control socket; dropping it stops serving and removes the file.
pub struct ControlSocket {
    path: PathBuf,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ControlSocket {
    fn drop(&mut self) {
        self.task.abort();
        let _ = std::fs::remove_file(&self.path);
    }
}

impl ControlSocket {
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Stops serving and waits until the serving task (and its handle on the store) is gone;
    /// the file is removed on drop.
    pub async fn stop(mut self) {
        self.task.abort();
        let _ = (&mut self.task).await;
    }
}

fn router(ctl: Ctl) -> Router {
    Router::new().route("/backup", post(backup)).with_state(ctl)
}

async fn backup(State(ctl): State<Ctl>, body: Bytes) -> Response {
    let req: BackupRequest = if body.is_empty() {
        BackupRequest::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(r) => r,
            Err(e) => return error(StatusCode::BAD_REQUEST, format!("invalid request: {e}")),
        }
    };
    if let Some(p) = &req.path
        && !p.is_absolute()
    {
        return error(
            StatusCode::BAD_REQUEST,
            format!("the backup path must be absolute, got {}", p.display()),
        );
    }
    let result = tokio::task::spawn_blocking(move || {
        super::take_online(&ctl.store, &ctl.backup_dir, req.path.as_deref())
    })
    .await;
    match result {
        Ok(Ok(summary)) => {
            tracing::info!(path = %summary.path.display(), records = summary.records, took_ms = summary.took_ms, "backup taken");
            (StatusCode::OK, Json(summary)).into_response()
        }
        Ok(Err(e)) => {
            tracing::error!(error = %e, "backup failed");
            error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
        }
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

fn error(status: StatusCode, message: String) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

/// Binds the socket (mode 0600) at `path` and serves it until the returned handle is dropped.
pub fn start(
    path: PathBuf,
    store: Arc<Store>,
    backup_dir: PathBuf,
) -> Result<ControlSocket, ControlError> {
    let fail = |why: String| ControlError::Socket {
        path: path.clone(),
        why,
    };
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(format!(".{}.tmp", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    let _ = std::fs::remove_file(&tmp);
    let listener = UnixListener::bind(&tmp).map_err(|e| fail(format!("cannot bind: {e}")))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600)).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            fail(format!("cannot restrict its mode: {e}"))
        })?;
    }
    // NB: a stale socket from a crash is replaced here; the database lock we hold proves no
    // other server uses this data directory.
    std::fs::rename(&tmp, &path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        fail(format!("cannot move into place: {e}"))
    })?;
    let app = router(Ctl { store, backup_dir });
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "control socket stopped");
        }
    });
    Ok(ControlSocket { path, task })
}

/// Asks the server listening on `socket` for a backup. `Ok(None)`: no server is listening
/// there (no socket, or a stale one).
pub async fn request_backup(
    socket: &Path,
    dest: Option<&Path>,
    timeout: Duration,
) -> Result<Option<BackupSummary>, ControlError> {
    let fail = |why: String| ControlError::Socket {
        path: socket.to_path_buf(),
        why,
    };
    let stream = match UnixStream::connect(socket).await {
        Ok(s) => s,
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
            ) =>
        {
            return Ok(None);
        }
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            return Err(fail(
                "permission denied: run this as root or as the user kaas runs as".into(),
            ));
        }
        Err(e) => return Err(fail(format!("cannot connect: {e}"))),
    };
    let body = serde_json::to_vec(&BackupRequest {
        path: dest.map(Path::to_path_buf),
    })
    .map_err(|e| fail(e.to_string()))?;
    let call = async {
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| fail(format!("handshake: {e}")))?;
        tokio::spawn(conn);
        let req = hyper::Request::post("/backup")
            .header(hyper::header::HOST, "localhost")
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| fail(e.to_string()))?;
        let res = sender
            .send_request(req)
            .await
            .map_err(|e| fail(format!("request failed: {e}")))?;
        let status = res.status();
        let bytes = Limited::new(res.into_body(), MAX_ANSWER_BYTES)
            .collect()
            .await
            .map_err(|e| fail(format!("reading the answer: {e}")))?
            .to_bytes();
        if status.is_success() {
            serde_json::from_slice::<BackupSummary>(&bytes)
                .map(Some)
                .map_err(|e| fail(format!("unexpected answer: {e}")))
        } else {
            let msg = serde_json::from_slice::<serde_json::Value>(&bytes)
                .ok()
                .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_owned))
                .unwrap_or_else(|| format!("HTTP {status}"));
            Err(ControlError::Refused(msg))
        }
    };
    tokio::time::timeout(timeout, call)
        .await
        .map_err(|_| fail("no answer in time".into()))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_socket_is_private_serves_backups_and_goes_away() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = Store::open(&dir.path().join("kaas.redb"), 1 << 20).unwrap();
        let sock = socket_path(dir.path());
        std::fs::write(&sock, b"stale").unwrap();
        let ctl = start(sock.clone(), Arc::new(store), dir.path().join("backups")).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&sock).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let t = Duration::from_secs(10);
        let b = request_backup(&sock, None, t)
            .await
            .unwrap()
            .expect("answered");
        assert!(b.path.starts_with(dir.path().join("backups")), "{b:?}");
        let err = request_backup(&sock, Some(Path::new("rel.redb")), t)
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("must be absolute"), "{err}");
        drop(ctl);
        assert!(!sock.exists());
        assert!(request_backup(&sock, None, t).await.unwrap().is_none());
    }
}
