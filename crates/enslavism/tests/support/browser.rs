//! The browser's side for the slave's tests: a str0m peer on 127.0.0.1
//! that offers one in-band channel and is driven by a task of its own, so
//! that a test can act and wait as a page would (send, read, close).

use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::change::{SdpAnswer, SdpPendingOffer};
use str0m::channel::ChannelId;
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc, RtcConfig};
use tokio::sync::{mpsc, oneshot};

/// What a test asks of the peer's task.
enum Command {
    Answer(String),
    Candidate(String),
    Send(Vec<u8>, bool),
    Close(oneshot::Sender<()>),
}

/// What the peer's task reports.
#[derive(Debug)]
pub enum BrowserEvent {
    /// The channel is open.
    Open,
    /// A message (`true`: binary).
    Message(Vec<u8>, bool),
    /// The connection ended.
    Closed,
}

/// A peer offering one channel, and its events.
pub struct Browser {
    commands: mpsc::UnboundedSender<Command>,
    events: mpsc::UnboundedReceiver<BrowserEvent>,
}

impl Browser {
    /// A peer offering the channel `label`, and its offer.
    pub async fn offer(label: &str) -> (Browser, String) {
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let local = socket.local_addr().unwrap();
        let mut rtc = RtcConfig::new()
            .set_crypto_provider(Arc::new(str0m::crypto::from_feature_flags()))
            .clear_codecs()
            .build(Instant::now());
        rtc.add_local_candidate(Candidate::host(local, "udp").unwrap());
        let mut api = rtc.sdp_api();
        let channel = api.add_channel(label.to_owned());
        let (offer, pending) = api.apply().expect("an offer");
        let (commands, inputs) = mpsc::unbounded_channel();
        let (events_tx, events) = mpsc::unbounded_channel();
        tokio::spawn(drive(rtc, socket, Some(pending), channel, inputs, events_tx));
        (Browser { commands, events }, offer.to_sdp_string())
    }

    /// The slave's answer.
    pub fn answer(&self, sdp: String) {
        let _ = self.commands.send(Command::Answer(sdp));
    }

    /// A candidate the slave trickled.
    pub fn candidate(&self, candidate: String) {
        let _ = self.commands.send(Command::Candidate(candidate));
    }

    /// Sends a message on the channel (`binary` false: text).
    pub fn send(&self, data: &[u8], binary: bool) {
        let _ = self.commands.send(Command::Send(data.to_vec(), binary));
    }

    /// The next event, within 10 s.
    pub async fn next_event(&mut self) -> BrowserEvent {
        tokio::time::timeout(Duration::from_secs(10), self.events.recv())
            .await
            .expect("a browser event in time")
            .unwrap_or(BrowserEvent::Closed)
    }

    /// The next message, within 10 s (panics if the connection ends first).
    pub async fn next_message(&mut self) -> (Vec<u8>, bool) {
        loop {
            match self.next_event().await {
                BrowserEvent::Message(data, binary) => return (data, binary),
                BrowserEvent::Open => continue,
                BrowserEvent::Closed => panic!("the browser's connection ended"),
            }
        }
    }

    /// Closes the connection as a page does (SCTP shutdown, DTLS
    /// close_notify) and returns once that is sent.
    pub async fn close(&self) {
        let (done, sent) = oneshot::channel();
        let _ = self.commands.send(Command::Close(done));
        let _ = tokio::time::timeout(Duration::from_secs(10), sent).await;
    }
}

/// The peer's task: datagrams, timers, the test's commands.
async fn drive(
    mut rtc: Rtc,
    socket: tokio::net::UdpSocket,
    mut pending: Option<SdpPendingOffer>,
    channel: ChannelId,
    mut commands: mpsc::UnboundedReceiver<Command>,
    events: mpsc::UnboundedSender<BrowserEvent>,
) {
    let local = socket.local_addr().unwrap();
    let mut buffer = vec![0; 65536];
    let mut closed: Option<oneshot::Sender<()>> = None;
    loop {
        let timeout = loop {
            match rtc.poll_output() {
                Ok(Output::Timeout(at)) => break at,
                Ok(Output::Transmit(t)) => {
                    let _ = socket.send_to(&t.contents, t.destination).await;
                }
                Ok(Output::Event(Event::ChannelOpen(id, _))) if id == channel => {
                    let _ = events.send(BrowserEvent::Open);
                }
                Ok(Output::Event(Event::ChannelData(data))) if data.id == channel => {
                    let _ = events.send(BrowserEvent::Message(data.data, data.binary));
                }
                Ok(Output::Event(Event::Closed)) | Err(_) => {
                    let _ = events.send(BrowserEvent::Closed);
                    return;
                }
                Ok(Output::Event(_)) => {}
            }
        };
        if !rtc.is_alive() {
            if let Some(done) = closed.take() {
                let _ = done.send(());
            }
            let _ = events.send(BrowserEvent::Closed);
            return;
        }
        let sleep = tokio::time::sleep_until(tokio::time::Instant::from_std(timeout));
        tokio::select! {
            received = socket.recv_from(&mut buffer) => {
                let Ok((len, from)) = received else { return };
                if let Ok(receive) = Receive::new(Protocol::Udp, from, local, &buffer[..len]) {
                    let _ = rtc.handle_input(Input::Receive(Instant::now(), receive));
                }
            }
            command = commands.recv() => match command {
                Some(Command::Answer(sdp)) => {
                    let answer = SdpAnswer::from_sdp_string(&sdp).expect("a valid answer");
                    rtc.sdp_api().accept_answer(pending.take().expect("one answer"), answer).expect("an answer str0m takes");
                }
                Some(Command::Candidate(candidate)) => {
                    if let Ok(candidate) = Candidate::from_sdp_string(&candidate) {
                        rtc.add_remote_candidate(candidate);
                    }
                }
                Some(Command::Send(data, binary)) => {
                    let written = rtc.channel(channel).expect("the channel is open").write(binary, &data);
                    assert!(written.expect("a write str0m takes"), "str0m had room for the message");
                }
                Some(Command::Close(done)) => {
                    let _ = rtc.close();
                    closed = Some(done);
                }
                None => return,
            },
            _ = sleep => {
                let _ = rtc.handle_input(Input::Timeout(Instant::now()));
            }
        }
    }
}
