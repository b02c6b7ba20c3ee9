//! WebSocket transport (`<url>wsagents/`, remoting-protocol.md §3): one binary message per
//! chunk frame, pings answered, capability and cookie in the upgrade headers.

use base64::Engine;
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::WebSocketStream;

use super::net::{BoxIo, HttpUrl, Net};
use super::{ConnectError, Secret};
use crate::remoting::command;

/// An open WebSocket to the controller.
pub struct WsConnection {
    ws: WebSocketStream<BoxIo>,
    /// The controller's capability mask.
    pub peer_capability: Option<i64>,
    /// The cookie to send on the next connection.
    pub cookie: Option<String>,
}

/// The `ws(s)://…/wsagents/` URL for a controller URL `http(s)://…/`.
pub fn ws_url(u: &HttpUrl) -> String {
    let scheme = if u.https { "wss" } else { "ws" };
    let host = if u.host.contains(':') {
        format!("[{}]", u.host)
    } else {
        u.host.clone()
    };
    format!("{scheme}://{host}:{}{}wsagents/", u.port, u.path)
}

/// Opens the WebSocket, sending name, secret, capability and the cookie of a previous
/// connection.
pub async fn connect(
    net: &Net,
    url: &str,
    name: &str,
    secret: &Secret,
    capability: i64,
    cookie: Option<&str>,
    extra_headers: &[(String, String)],
) -> Result<WsConnection, ConnectError> {
    let u = HttpUrl::parse(url)?;
    let target = ws_url(&u);
    let mut req = target
        .as_str()
        .into_client_request()
        .map_err(|e| ConnectError::Refused(format!("bad controller URL {target}: {e}")))?;
    let cap = base64::engine::general_purpose::STANDARD.encode(command::capability(
        &crate::remoting::classes::registry(),
        capability,
    ));
    let header = |v: &str, what: &str| {
        HeaderValue::from_str(v).map_err(|_| {
            ConnectError::Refused(format!(
                "{what} contains characters not allowed in an HTTP header"
            ))
        })
    };
    let h = req.headers_mut();
    h.insert("Node-Name", header(name, "the agent name")?);
    h.insert("Secret-Key", header(secret.expose(), "the secret")?);
    h.insert("X-Remoting-Capability", header(&cap, "the capability")?);
    if let Some(c) = cookie {
        h.insert("Connection-Cookie", header(c, "the cookie")?);
    }
    for (k, v) in extra_headers {
        let name = tungstenite::http::HeaderName::from_bytes(k.as_bytes()).map_err(|_| {
            ConnectError::Refused(format!("-webSocketHeader: {k:?} is not a header name"))
        })?;
        h.append(name, header(v, "a -webSocketHeader value")?);
    }
    let stream = net.open(&u.host, u.port, u.https).await?;
    let upgrade = tokio::time::timeout(net.timeout, tokio_tungstenite::client_async(req, stream));
    let upgraded = match upgrade.await {
        Ok(r) => r,
        Err(_) => {
            return Err(ConnectError::Failed(format!(
                "WebSocket upgrade at {target}: no answer within {} (--connect-timeout)",
                super::show_duration(net.timeout)
            )))
        }
    };
    let (ws, resp) = match upgraded {
        Ok(x) => x,
        Err(tungstenite::Error::Http(resp)) => {
            let status = resp.status();
            let body = resp
                .body()
                .as_ref()
                .map(|b| String::from_utf8_lossy(b).trim().to_string())
                .unwrap_or_default();
            let msg = format!(
                "{target} answered HTTP {status}{}{body}",
                if body.is_empty() { "" } else { ": " }
            );
            return Err(match status.as_u16() {
                403 => ConnectError::Refused(format!("{msg} (wrong secret for node {name:?})")),
                400 => ConnectError::Refused(msg),
                _ => ConnectError::Failed(msg),
            });
        }
        Err(e) => {
            return Err(ConnectError::Failed(format!(
                "cannot connect to {target}: {e}"
            )))
        }
    };
    let peer_capability = resp
        .headers()
        .get("X-Remoting-Capability")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| base64::engine::general_purpose::STANDARD.decode(v).ok())
        .and_then(|b| command::read_capability(&b));
    let cookie = resp
        .headers()
        .get("Connection-Cookie")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    Ok(WsConnection {
        ws,
        peer_capability,
        cookie,
    })
}

/// What the connection delivered.
pub enum Incoming {
    /// Bytes for the channel.
    Data(Vec<u8>),
    /// Nothing for the channel (ping, pong, text).
    Nothing,
    /// The controller closed the connection.
    Closed(String),
}

impl WsConnection {
    /// Waits for the next message.
    pub async fn recv(&mut self) -> Incoming {
        match self.ws.next().await {
            Some(Ok(Message::Binary(b))) => Incoming::Data(b.to_vec()),
            Some(Ok(Message::Ping(_))) => {
                // tungstenite queued the pong; make sure it goes out now.
                let _ = self.ws.flush().await;
                Incoming::Nothing
            }
            Some(Ok(Message::Close(f))) => Incoming::Closed(
                f.map(|f| format!("controller closed the WebSocket: {} {}", f.code, f.reason))
                    .unwrap_or_else(|| "controller closed the WebSocket".into()),
            ),
            Some(Ok(_)) => Incoming::Nothing,
            Some(Err(e)) => Incoming::Closed(format!("WebSocket error: {e}")),
            None => Incoming::Closed("connection closed".into()),
        }
    }

    /// Sends frames, one binary message each.
    pub async fn send(&mut self, frames: Vec<Vec<u8>>) -> Result<(), String> {
        for f in frames {
            self.ws
                .feed(Message::Binary(f.into()))
                .await
                .map_err(|e| format!("WebSocket send failed: {e}"))?;
        }
        self.ws
            .flush()
            .await
            .map_err(|e| format!("WebSocket send failed: {e}"))
    }

    /// Closes the WebSocket.
    pub async fn close(&mut self) {
        let _ = self.ws.close(None).await;
    }
}
