//! Janus's VideoRoom over its HTTP API, for the side-by-side run: one session holds a handle
//! per peer; the presenter joins a room of its own as a publisher with its offer, each viewer
//! joins as a subscriber to it and answers Janus's offer. Events arrive on the session's long
//! poll and go to whoever waits for that transaction.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::{Value, json};
use str0m::change::{SdpAnswer, SdpOffer};
use str0m::media::Direction;
use tokio::sync::oneshot;

use super::{Peer, offer};

type Waiters = Arc<Mutex<HashMap<String, oneshot::Sender<Value>>>>;

pub(super) struct JanusSfu {
    http: reqwest::Client,
    /// `{api}/{session}`.
    session: String,
    room: u64,
    publisher: Mutex<Option<u64>>,
    waiters: Waiters,
    next: std::sync::atomic::AtomicU64,
    pub(super) pid: u32,
    stop: tokio_util::sync::CancellationToken,
}

impl Drop for JanusSfu {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl JanusSfu {
    pub(super) async fn new(api: &str, pid: u32) -> anyhow::Result<JanusSfu> {
        let http = reqwest::Client::new();
        let r: Value = http
            .post(api)
            .json(&json!({"janus": "create", "transaction": "create"}))
            .send()
            .await
            .context("Janus's HTTP API does not answer")?
            .json()
            .await?;
        let id = r["data"]["id"].as_u64().with_context(|| format!("create: {r}"))?;
        let session = format!("{}/{id}", api.trim_end_matches('/'));
        let waiters: Waiters = Default::default();
        let stop = tokio_util::sync::CancellationToken::new();
        // The long poll: every event to whoever waits for its transaction. It also keeps the
        // session alive.
        {
            let (http, url, waiters, stop) =
                (http.clone(), session.clone(), waiters.clone(), stop.clone());
            tokio::spawn(async move {
                while !stop.is_cancelled() {
                    let got = tokio::select! {
                        r = http.get(format!("{url}?maxev=50")).send() => r,
                        _ = stop.cancelled() => return,
                    };
                    let Ok(r) = got else {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    };
                    let Ok(v) = r.json::<Value>().await else { continue };
                    let events = match v {
                        Value::Array(a) => a,
                        v => vec![v],
                    };
                    for e in events {
                        let Some(t) = e["transaction"].as_str() else { continue };
                        if e["janus"] == "ack" {
                            continue;
                        }
                        if let Some(w) = waiters.lock().unwrap().remove(t) {
                            let _ = w.send(e);
                        }
                    }
                }
            });
        }
        let mut j = JanusSfu {
            http,
            session,
            room: 0,
            publisher: Mutex::new(None),
            waiters,
            next: Default::default(),
            pid,
            stop,
        };
        let handle = j.attach().await?;
        let room = 4_000_000 + u64::from(std::process::id());
        let r = j
            .message(
                handle,
                json!({"request": "create", "room": room, "publishers": 1, "bitrate": 0,
                       "audiocodec": "opus", "videocodec": "vp8", "fir_freq": 10,
                       "record": false, "permanent": false}),
                None,
            )
            .await?;
        if r["plugindata"]["data"]["videoroom"] != "created" {
            bail!("Janus did not create the room: {r}");
        }
        j.room = room;
        Ok(j)
    }

    fn transaction(&self) -> String {
        format!("t{}", self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
    }

    async fn attach(&self) -> anyhow::Result<u64> {
        let r: Value = self
            .http
            .post(&self.session)
            .json(&json!({"janus": "attach", "plugin": "janus.plugin.videoroom",
                          "transaction": self.transaction()}))
            .send()
            .await?
            .json()
            .await?;
        r["data"]["id"].as_u64().with_context(|| format!("attach: {r}"))
    }

    /// A message to the plugin on `handle`; its answer, at once or from the long poll.
    async fn message(
        &self,
        handle: u64,
        body: Value,
        jsep: Option<Value>,
    ) -> anyhow::Result<Value> {
        let t = self.transaction();
        let (tx, rx) = oneshot::channel();
        self.waiters.lock().unwrap().insert(t.clone(), tx);
        let mut m = json!({"janus": "message", "body": body, "transaction": t});
        if let Some(j) = jsep {
            m["jsep"] = j;
        }
        let r: Value = self
            .http
            .post(format!("{}/{handle}", self.session))
            .json(&m)
            .send()
            .await?
            .json()
            .await?;
        match r["janus"].as_str() {
            Some("ack") => {}
            Some("success") => {
                self.waiters.lock().unwrap().remove(&t);
                return Ok(r);
            }
            _ => {
                self.waiters.lock().unwrap().remove(&t);
                bail!("Janus refused {m}: {r}");
            }
        }
        let e = tokio::time::timeout(Duration::from_secs(20), rx)
            .await
            .context("no answer from Janus within 20 s")??;
        if let Some(err) = e["plugindata"]["data"]["error"].as_str() {
            bail!("Janus: {err}");
        }
        Ok(e)
    }

    pub(super) async fn publish(&self, peer: &mut Peer) -> anyhow::Result<()> {
        let handle = self.attach().await?;
        let (o, pending) = offer(peer, Direction::SendOnly)?;
        let joined = self
            .message(
                handle,
                json!({"request": "join", "ptype": "publisher", "room": self.room,
                       "display": "presenter"}),
                None,
            )
            .await?;
        let e = self
            .message(
                handle,
                json!({"request": "publish", "audiocodec": "opus", "videocodec": "vp8"}),
                Some(json!({"type": "offer", "sdp": o.to_sdp_string(), "trickle": false})),
            )
            .await?;
        let id = joined["plugindata"]["data"]["id"]
            .as_u64()
            .with_context(|| format!("join: {joined}"))?;
        let sdp = e["jsep"]["sdp"].as_str().with_context(|| format!("no answer: {e}"))?;
        peer.rtc.sdp_api().accept_answer(pending, SdpAnswer::from_sdp_string(sdp)?)?;
        *self.publisher.lock().unwrap() = Some(id);
        Ok(())
    }

    pub(super) async fn view(&self, peer: &mut Peer) -> anyhow::Result<()> {
        let feed = self.publisher.lock().unwrap().context("no publisher yet")?;
        let handle = self.attach().await?;
        let e = self
            .message(
                handle,
                json!({"request": "join", "ptype": "subscriber", "room": self.room,
                       "streams": [{"feed": feed}]}),
                None,
            )
            .await?;
        let sdp = e["jsep"]["sdp"].as_str().with_context(|| format!("no offer: {e}"))?;
        let answer = peer.rtc.sdp_api().accept_offer(SdpOffer::from_sdp_string(sdp)?)?;
        self.message(
            handle,
            json!({"request": "start", "room": self.room}),
            Some(json!({"type": "answer", "sdp": answer.to_sdp_string(), "trickle": false})),
        )
        .await?;
        Ok(())
    }
}
