//! Round trips between two tasks over oneshot channels, in two shapes:
//! two spawned tasks (fresh channel per hop), and a root task inside
//! `block_on` against one spawned task over a pre-allocated chain.

use futures::channel::oneshot;

use super::AsyncScenario;
use crate::contenders::Spawner;

/// Round trips per iteration.
const ROUND_TRIPS: usize = 1_000;

/// A ping or pong: carries the sender on which the other side must answer.
struct Ball(oneshot::Sender<Ball>);

/// Serves `ROUND_TRIPS` balls: waits on `inbox`, answers through the
/// sender inside the ball with a fresh channel for the next one.
async fn serve(mut inbox: oneshot::Receiver<Ball>) {
    for _ in 0..ROUND_TRIPS {
        let Ball(reply) = inbox.await.expect("pinger vanished");
        let (next, next_inbox) = oneshot::channel();
        assert!(reply.send(Ball(next)).is_ok(), "pinger vanished");
        inbox = next_inbox;
    }
}

/// Starts `ROUND_TRIPS` round trips through `to_server`.
async fn ping(mut to_server: oneshot::Sender<Ball>) {
    for _ in 0..ROUND_TRIPS {
        let (back, answer) = oneshot::channel();
        assert!(to_server.send(Ball(back)).is_ok(), "server vanished");
        let Ball(next) = answer.await.expect("server vanished");
        to_server = next;
    }
}

pub(crate) struct PingPong;

impl AsyncScenario for PingPong {
    const NAME: &'static str = "ping_pong";
    const ABOUT: &'static str =
        "two spawned tasks, 1000 round trips over fresh oneshots, joined in block_on; op = one round trip";
    const OPS: usize = ROUND_TRIPS;
    type Input = ();

    fn prepare() {}

    fn run<S: Spawner>(spawner: &S, (): ()) {
        let (to_server, inbox) = oneshot::channel();
        let server = spawner.spawn(serve(inbox));
        let pinger = spawner.spawn(ping(to_server));
        spawner.block_on(async {
            pinger.await;
            server.await;
        });
    }
}

/// Both ends of `ROUND_TRIPS` pings and as many pongs, allocated untimed.
pub(crate) struct Chain {
    ping_tx: Vec<oneshot::Sender<()>>,
    ping_rx: Vec<oneshot::Receiver<()>>,
    pong_tx: Vec<oneshot::Sender<()>>,
    pong_rx: Vec<oneshot::Receiver<()>>,
}

pub(crate) struct PingPongRoot;

impl AsyncScenario for PingPongRoot {
    const NAME: &'static str = "ping_pong_root";
    const ABOUT: &'static str =
        "root task in block_on vs one spawned task, 1000 round trips over a pre-allocated oneshot chain; op = one round trip";
    const OPS: usize = ROUND_TRIPS;
    type Input = Chain;

    fn prepare() -> Chain {
        let (ping_tx, ping_rx) = (0..ROUND_TRIPS).map(|_| oneshot::channel()).unzip();
        let (pong_tx, pong_rx) = (0..ROUND_TRIPS).map(|_| oneshot::channel()).unzip();
        Chain {
            ping_tx,
            ping_rx,
            pong_tx,
            pong_rx,
        }
    }

    fn run<S: Spawner>(spawner: &S, chain: Chain) {
        let Chain {
            ping_tx,
            ping_rx,
            pong_tx,
            pong_rx,
        } = chain;
        let inner = spawner.clone();
        spawner.block_on(async move {
            let echo = inner.spawn(async move {
                for (ping, pong) in ping_rx.into_iter().zip(pong_tx) {
                    ping.await.expect("root vanished");
                    pong.send(()).expect("root vanished");
                }
            });
            for (ping, pong) in ping_tx.into_iter().zip(pong_rx) {
                ping.send(()).expect("echo vanished");
                pong.await.expect("echo vanished");
            }
            echo.await;
        });
    }
}
