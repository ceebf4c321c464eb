//! [`Echo`]: the echo state machine of a connection with one buffer and one operation in
//! flight (the blocking models), with the receive and step types it speaks.

use super::{SendResult, Waiting};

/// What the connection should do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Receive into the (empty) buffer; `nowait` means fail with `WouldBlock` rather than wait.
    Recv {
        /// Do not wait for data.
        nowait: bool,
    },
    /// Send `buf[at..len]`.
    Send {
        /// Where to resume.
        at: usize,
        /// End of the pending bytes.
        len: usize,
    },
    /// Close the connection.
    Close,
}

/// How a receive ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecvResult {
    /// `n > 0` bytes arrived (the buffer now holds exactly them).
    Data(usize),
    /// The peer closed its sending side (FIN).
    Eof,
    /// A `nowait` receive found nothing.
    WouldBlock,
    /// The receive was cancelled before data arrived.
    Cancelled,
    /// Reset or another error: the connection is over.
    Failed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// A receive is in flight; `waiting` if it may wait for data.
    Reading { waiting: bool },
    /// A send of `buf[at..len]` is in flight.
    Writing { at: usize, len: usize },
    /// The close is in flight or done.
    Closing,
}

/// The echo state of one connection.
#[derive(Debug, Clone)]
pub struct Echo {
    phase: Phase,
    draining: bool,
    forced: bool,
}

impl Echo {
    /// A new connection and its first step (a receive).
    pub fn start(draining: bool) -> (Echo, Step) {
        let mut echo = Echo {
            phase: Phase::Closing,
            draining,
            forced: false,
        };
        let step = echo.read();
        (echo, step)
    }

    fn read(&mut self) -> Step {
        if self.forced {
            return self.close();
        }
        let nowait = self.draining;
        self.phase = Phase::Reading { waiting: !nowait };
        Step::Recv { nowait }
    }

    fn close(&mut self) -> Step {
        self.phase = Phase::Closing;
        Step::Close
    }

    /// The connection is closing (its close was asked for).
    pub fn is_closing(&self) -> bool {
        self.phase == Phase::Closing
    }

    /// Bytes received and not yet echoed.
    pub fn pending(&self) -> usize {
        match self.phase {
            Phase::Writing { at, len } => len - at,
            _ => 0,
        }
    }

    /// What the connection waits for now.
    pub fn waiting(&self) -> Waiting {
        match self.phase {
            Phase::Reading { waiting: true } => Waiting::PeerData,
            Phase::Writing { .. } => Waiting::PeerReading,
            _ => Waiting::Nothing,
        }
    }

    /// A timeout expired: the connection closes. Returns true when an operation other than the
    /// close is in flight, which the caller must cancel; its completion then leads to the close.
    pub fn expire(&mut self) -> bool {
        self.forced = true;
        !self.is_closing()
    }

    /// A receive finished.
    pub fn on_recv(&mut self, result: RecvResult) -> Step {
        debug_assert!(
            matches!(self.phase, Phase::Reading { .. }),
            "{:?}",
            self.phase
        );
        if self.forced {
            return self.close();
        }
        match result {
            RecvResult::Data(0) => self.close(),
            RecvResult::Data(n) => {
                self.phase = Phase::Writing { at: 0, len: n };
                Step::Send { at: 0, len: n }
            }
            RecvResult::Eof | RecvResult::Failed => self.close(),
            RecvResult::WouldBlock if self.draining => self.close(),
            RecvResult::WouldBlock | RecvResult::Cancelled => self.read(),
        }
    }

    /// A send finished.
    pub fn on_send(&mut self, result: SendResult) -> Step {
        let Phase::Writing { at, len } = self.phase else {
            debug_assert!(false, "send completion while {:?}", self.phase);
            return self.close();
        };
        if self.forced {
            return self.close();
        }
        match result {
            SendResult::Sent(n) if n > 0 && at + n < len => {
                self.phase = Phase::Writing { at: at + n, len };
                Step::Send { at: at + n, len }
            }
            SendResult::Sent(n) if n > 0 => self.read(),
            SendResult::Sent(_) | SendResult::Failed => self.close(),
        }
    }

    /// Graceful shutdown begins. Returns true when the operation in flight is a receive
    /// waiting for data, which the caller must cancel (its completion then leads on).
    pub fn drain(&mut self) -> bool {
        self.draining = true;
        matches!(self.phase, Phase::Reading { waiting: true })
    }

    /// The drain time is up. Returns true when an operation other than the close is in flight,
    /// which the caller must cancel; its completion then leads to the close.
    pub fn force(&mut self) -> bool {
        self.draining = true;
        self.forced = true;
        !self.is_closing()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_closes_after_the_cancelled_operation_completes() {
        let (mut e, _) = Echo::start(false);
        assert_eq!(e.waiting(), Waiting::PeerData);
        assert!(e.expire(), "the waiting receive must be cancelled");
        assert_eq!(e.on_recv(RecvResult::Cancelled), Step::Close);
        assert_eq!(e.waiting(), Waiting::Nothing);
        assert!(!e.expire(), "nothing to cancel once closing");

        let (mut e, _) = Echo::start(false);
        e.on_recv(RecvResult::Data(10));
        assert_eq!(e.waiting(), Waiting::PeerReading);
        assert!(e.expire());
        assert_eq!(e.on_send(SendResult::Failed), Step::Close);

        let (e, _) = Echo::start(true);
        assert_eq!(
            e.waiting(),
            Waiting::Nothing,
            "a draining receive does not wait"
        );
    }

    #[test]
    fn echoes_each_chunk_then_reads_again() {
        let (mut e, step) = Echo::start(false);
        assert_eq!(step, Step::Recv { nowait: false });
        assert_eq!(
            e.on_recv(RecvResult::Data(10)),
            Step::Send { at: 0, len: 10 }
        );
        assert_eq!(e.pending(), 10);
        assert_eq!(
            e.on_send(SendResult::Sent(10)),
            Step::Recv { nowait: false }
        );
        assert_eq!(e.pending(), 0);
    }

    #[test]
    fn partial_sends_continue_where_they_stopped() {
        let (mut e, _) = Echo::start(false);
        e.on_recv(RecvResult::Data(100));
        assert_eq!(
            e.on_send(SendResult::Sent(30)),
            Step::Send { at: 30, len: 100 }
        );
        assert_eq!(
            e.on_send(SendResult::Sent(1)),
            Step::Send { at: 31, len: 100 }
        );
        assert_eq!(e.pending(), 69);
        assert_eq!(
            e.on_send(SendResult::Sent(69)),
            Step::Recv { nowait: false }
        );
    }

    #[test]
    fn never_receives_while_an_echo_is_unsent() {
        let (mut e, _) = Echo::start(false);
        e.on_recv(RecvResult::Data(16384));
        for _ in 0..1000 {
            let step = e.on_send(SendResult::Sent(1));
            assert!(matches!(step, Step::Send { .. }), "{step:?}");
        }
    }

    #[test]
    fn half_close_closes_after_the_echo() {
        let (mut e, _) = Echo::start(false);
        e.on_recv(RecvResult::Data(5));
        assert_eq!(e.on_send(SendResult::Sent(5)), Step::Recv { nowait: false });
        assert_eq!(e.on_recv(RecvResult::Eof), Step::Close);
        assert!(e.is_closing());
    }

    #[test]
    fn errors_close_and_zero_byte_sends_do_not_spin() {
        let (mut e, _) = Echo::start(false);
        assert_eq!(e.on_recv(RecvResult::Failed), Step::Close);
        let (mut e, _) = Echo::start(false);
        e.on_recv(RecvResult::Data(5));
        assert_eq!(e.on_send(SendResult::Failed), Step::Close);
        let (mut e, _) = Echo::start(false);
        e.on_recv(RecvResult::Data(5));
        assert_eq!(e.on_send(SendResult::Sent(0)), Step::Close);
    }

    #[test]
    fn drain_cancels_a_waiting_receive_then_echoes_what_is_left() {
        let (mut e, _) = Echo::start(false);
        assert!(e.drain(), "a waiting receive must be cancelled");
        assert_eq!(
            e.on_recv(RecvResult::Cancelled),
            Step::Recv { nowait: true }
        );
        assert_eq!(e.on_recv(RecvResult::Data(7)), Step::Send { at: 0, len: 7 });
        assert_eq!(e.on_send(SendResult::Sent(7)), Step::Recv { nowait: true });
        assert_eq!(e.on_recv(RecvResult::WouldBlock), Step::Close);
    }

    #[test]
    fn drain_lets_a_send_in_flight_finish() {
        let (mut e, _) = Echo::start(false);
        e.on_recv(RecvResult::Data(9));
        assert!(!e.drain(), "a send is not cancelled by a drain");
        assert_eq!(e.on_send(SendResult::Sent(9)), Step::Recv { nowait: true });
    }

    #[test]
    fn a_receive_that_won_the_race_with_its_cancel_is_still_echoed() {
        let (mut e, _) = Echo::start(false);
        assert!(e.drain());
        assert_eq!(e.on_recv(RecvResult::Data(3)), Step::Send { at: 0, len: 3 });
    }

    #[test]
    fn connections_accepted_while_draining_never_wait() {
        let (_, step) = Echo::start(true);
        assert_eq!(step, Step::Recv { nowait: true });
    }

    #[test]
    fn force_closes_whatever_is_in_flight() {
        let (mut e, _) = Echo::start(false);
        e.on_recv(RecvResult::Data(9));
        assert!(e.force());
        assert_eq!(e.on_send(SendResult::Sent(4)), Step::Close);
        assert!(!e.force(), "nothing left to cancel once closing");
        let (mut e, _) = Echo::start(false);
        assert!(e.force());
        assert_eq!(e.on_recv(RecvResult::Data(4)), Step::Close);
    }
}
