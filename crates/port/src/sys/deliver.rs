//! One driver with its table: operations go in (submit), raw completions come out as the
//! caller's [`Completion`]s (deliver). Generic over the driver, so that each backend's path is
//! compiled for it: no dispatch per operation or per completion.

use std::io;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::errors::code;
use crate::op::{Completion, Op, Outcome};
use crate::sys::outcome::{carried_buffer, complete, complete_more, reclaim_buffer};
use crate::sys::pool::BufPool;
use crate::sys::{buffer_flags, Driver, OpState, RawCompletion, CQE_F_MORE};
use crate::table::{InFlight, OpTable, Work};
use crate::token::{OpKind, Token};

/// A driver and the operations in flight on it.
#[derive(Debug)]
pub(crate) struct Driven<D: Driver> {
    /// The backend. Declared before `table`, so that it is dropped first: a ring the kernel
    /// writes through is closed before the operations it writes into are freed.
    pub driver: D,
    /// The operations in flight, each with the driver's state for it.
    pub table: OpTable<D::State>,
}

impl<D: Driver> Driven<D> {
    /// `driver` with an empty table with room for `ops` operations in flight: up to that many,
    /// submitting never grows it (growth is an allocation, which a busy port would otherwise
    /// meet at whichever message first takes it to a new high-water mark).
    pub fn new(driver: D, ops: u32) -> Driven<D> {
        Driven {
            driver,
            table: OpTable::with_capacity(ops as usize),
        }
    }

    /// Stores `op` in the table and pushes it to the driver; see
    /// [`Port::submit`](crate::Port::submit).
    #[inline]
    pub fn submit(
        &mut self,
        key: u64,
        op: Op,
        mut pool: Option<&mut BufPool>,
    ) -> io::Result<Token> {
        let kind = op.kind();
        if let Op::SendBufs { bufs, .. } = &op {
            if bufs.is_empty() {
                return Err(io::Error::from_raw_os_error(code::INVALID));
            }
        }
        let state = D::State::new(&op);
        let token = self.table.insert(InFlight {
            key,
            kind,
            work: Work::new(op),
            pooled: None,
            state,
            generation: 0,
        });
        let inflight = self.table.get_mut(token).expect("just inserted");
        if let Err(e) = self.driver.push(token, inflight, pool.as_deref_mut()) {
            if let Some(mut inflight) = self.table.remove(token) {
                // A pool buffer the driver took for this receive goes back: it received nothing.
                if let (Some(id), Some(pool)) = (inflight.pooled.take(), pool) {
                    pool.untake(id);
                }
                self.driver.reclaim(&mut inflight);
            }
            return Err(e);
        }
        Ok(token)
    }

    /// Asks the operation `token` to end early, if it is still in flight.
    #[inline]
    pub fn cancel(&mut self, token: Token) -> io::Result<()> {
        if !self.table.contains(token) {
            return Ok(());
        }
        self.driver.cancel(token)
    }

    /// Has the driver wait (into `raw`, cleared first), then delivers what it reported to
    /// `out`. Returns how many raw completions were stale. A wait that fails after the driver
    /// reaped completions still delivers them (each may hand over a socket or a buffer) and
    /// then reports its error.
    #[inline]
    pub fn wait(
        &mut self,
        raw: &mut Vec<RawCompletion>,
        mut pool: Option<&mut BufPool>,
        timeout: Option<Duration>,
        now: Option<Instant>,
        posted: &Mutex<Vec<u64>>,
        out: &mut Vec<Completion>,
    ) -> io::Result<u64> {
        raw.clear();
        let waited = self
            .driver
            .wait(&mut self.table, pool.as_deref_mut(), timeout, now, raw);
        let mut to = Delivery {
            table: &mut self.table,
            driver: &mut self.driver,
            posted,
            out,
        };
        let stale = deliver(raw, &mut to, pool);
        waited.map(|()| stale)
    }

    /// The port is going away: see [`Driver::quiesce`].
    pub fn quiesce(&mut self, pool: &mut Option<BufPool>) {
        self.driver.quiesce(&mut self.table, pool);
    }
}

/// Where [`deliver`] takes operations from and puts completions.
struct Delivery<'a, D: Driver> {
    /// The operations in flight.
    table: &'a mut OpTable<D::State>,
    /// The driver, which takes back what it lent a finished operation.
    driver: &'a mut D,
    /// The values posted to the port.
    posted: &'a Mutex<Vec<u64>>,
    /// The caller's completions.
    out: &'a mut Vec<Completion>,
}

/// Turns raw completions into [`Completion`]s: operations come out of the table with their
/// resources, a wake-up drains the posted values, a cancellation's own completion is dropped.
/// A bundle receive (one completion for several pool buffers) becomes one completion per
/// buffer, so callers see the same chunks whichever way the kernel filled them.
/// Returns how many raw completions were stale (unknown token, freed slot, wrong kind).
fn deliver<D: Driver>(
    raw: &[RawCompletion],
    to: &mut Delivery<'_, D>,
    mut pool: Option<&mut BufPool>,
) -> u64 {
    let mut stale = 0;
    for c in raw {
        // Where every buffer of a bundle lies is read before any of them can be given back.
        // A datagram receive fills one buffer, never a bundle.
        let datagram = Token::from_raw(c.user_data).map(Token::kind) == Some(OpKind::RecvFromMulti);
        let bundle = match (pool.as_deref(), carried_buffer(c.flags, None)) {
            (Some(p), Some((first, _))) if c.result > 0 && !datagram => {
                Some(p.bundle(first, c.result as usize)).filter(|b| b.parts > 1)
            }
            _ => None,
        };
        let Some(bundle) = bundle else {
            stale += to.one(*c, pool.as_deref_mut());
            continue;
        };
        let more = c.flags & CQE_F_MORE != 0;
        let parts = bundle.parts;
        for k in 0..parts {
            let Some((id, len)) = pool.as_deref().map(|p| p.bundle_part(&bundle, k)) else {
                break;
            };
            let part = RawCompletion {
                user_data: c.user_data,
                result: i32::try_from(len).unwrap_or(i32::MAX),
                flags: buffer_flags(id, more || k + 1 < parts),
            };
            stale += to.one(part, pool.as_deref_mut());
        }
    }
    stale
}

impl<D: Driver> Delivery<'_, D> {
    /// [`deliver`] for one raw completion (one buffer at most); returns 1 when it was stale.
    fn one(&mut self, c: RawCompletion, pool: Option<&mut BufPool>) -> u64 {
        let RawCompletion {
            user_data,
            result: res,
            flags,
        } = c;
        let Some(token) = Token::from_raw(user_data) else {
            reclaim_buffer(flags, pool);
            return 1;
        };
        match token.kind() {
            OpKind::Wake => {
                let mut queue = self.posted.lock().unwrap_or_else(|p| p.into_inner());
                self.out.extend(queue.drain(..).map(|key| Completion {
                    key,
                    outcome: Outcome::Posted,
                }));
            }
            OpKind::Cancel => {}
            kind if kind.is_multishot() && flags & CQE_F_MORE != 0 => {
                let Some(inflight) = self.table.get_mut(token) else {
                    reclaim_buffer(flags, pool);
                    return 1;
                };
                let key = inflight.key;
                // SAFETY: `res` is the kernel's result for the operation `token` names (the
                // table confirmed slot, generation and kind), which stays armed; the driver
                // promised (`Driver`) that its results follow the contract.
                let outcome =
                    unsafe { complete_more(kind, res, flags, pool, self.driver.direct_table()) };
                self.out.push(Completion { key, outcome });
            }
            _ => {
                let Some(mut inflight) = self.table.remove(token) else {
                    reclaim_buffer(flags, pool);
                    return 1;
                };
                self.driver.reclaim(&mut inflight);
                let key = inflight.key;
                // SAFETY: `res` is the kernel's result for the operation `token` names, and the
                // table has just confirmed (slot, generation and kind) that it is this one; the
                // driver promised (`Driver`) that its results follow the contract.
                let (outcome, state) =
                    unsafe { complete(inflight, res, flags, pool, self.driver.direct_table()) };
                self.driver.recycle(state);
                self.out.push(Completion { key, outcome });
            }
        }
        0
    }
}
