//! The back half of a trace's event stream, on a thread of its own.
//!
//! The recorder's thread encodes and frames events into a [`Batch`] and
//! hands each batch of about [`BATCH`] bytes over; the stream's thread folds
//! them into the stream's checksum, compresses them with zstd and writes
//! the result to memory (a deferred trace) or to `events.zst`. That is most
//! of what writing a trace costs, and the recorder's thread shares one CPU
//! with the program it records ([`rrtest_sys::cpu::bind_to_cpu`]): from
//! another CPU it overlaps the program instead of stopping it. The stream's
//! thread leaves the bound CPU ([`rrtest_sys::cpu::leave_bound_cpu`]) and
//! blocks every signal, which stay the recorder thread's.
//!
//! The thread starts with the first full batch: a short recording (most
//! tests) writes its few events on the recorder's thread, at its end, and
//! pays for no thread and no cross-CPU wake-ups.
//!
//! Writing is asynchronous: an I/O error of the stream's thread shows at a
//! later [`Pipeline::push`], [`Pipeline::flush`], [`Pipeline::spill_to`] or
//! [`Pipeline::finish`], after which the stream writes nothing more (the
//! trace reads as truncated where the error struck). `flush` and `finish`
//! wait for the thread to have done everything handed to it.

use std::fs::File;
use std::io::{self, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use super::codec::EncodeError;
use super::event::{Event, Tid};
use super::stream::{Batch, PushError, StreamWriter};

/// zstd level of the event stream: level 1 compresses recorded memory well
/// at several hundred MB/s, and most recordings are thrown away.
pub const ZSTD_LEVEL: i32 = 1;

/// Framed bytes gathered before a batch is handed over.
pub const BATCH: usize = 128 * 1024;

/// Batches handed over and not yet written, at most: a recorder that frames
/// faster than its stream's thread compresses waits for it.
const QUEUE: usize = 4;

/// Where the compressed stream goes: memory while the trace is deferred,
/// then `events.zst`.
pub enum Spill {
    /// Held until the trace is written or dropped.
    Memory(Vec<u8>),
    /// `events.zst`.
    File(File),
}

impl Write for Spill {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Spill::Memory(v) => {
                v.extend_from_slice(buf);
                Ok(buf.len())
            }
            Spill::File(f) => f.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Spill::Memory(_) => Ok(()),
            Spill::File(f) => f.flush(),
        }
    }
}

type Stream = StreamWriter<zstd::stream::write::Encoder<'static, Spill>>;

/// What is done to the stream, by whichever thread holds it.
enum Job {
    /// Write these records.
    Write(Batch),
    /// End the current zstd block and write it out.
    Flush,
    /// Write what memory holds to this file, and the rest of the stream
    /// after it.
    SpillTo(File),
    /// Write the end record and end the zstd frame.
    Finish,
}

/// What both threads see.
#[derive(Default)]
struct Shared {
    /// Compressed bytes held in memory (by a deferred trace).
    held: AtomicUsize,
    /// The first write error, until the recorder's thread takes it.
    failed: Mutex<Option<io::Error>>,
}

/// The stream's thread, once started.
struct Worker {
    /// Jobs, each with where to answer once it is done (if anywhere).
    jobs: Option<SyncSender<(Job, Option<SyncSender<()>>)>>,
    /// Batches the thread is done with, to reuse.
    spent: Receiver<Batch>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Worker {
    fn drop(&mut self) {
        // Closing the queue ends the thread once it has done the rest.
        self.jobs = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The recorder thread's end of the event stream.
pub struct Pipeline {
    /// Records framed and not handed over yet.
    batch: Batch,
    /// Events pushed, handed over or not.
    events: u64,
    /// The stream, until the thread takes it.
    here: Option<Stream>,
    worker: Option<Worker>,
    shared: Arc<Shared>,
    /// An error was reported: every later call fails.
    broken: bool,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("events", &self.events)
            .field("framed", &self.batch.len())
            .field("threaded", &self.worker.is_some())
            .finish_non_exhaustive()
    }
}

fn thread_gone() -> io::Error {
    io::Error::other("the trace's compression thread is gone")
}

impl Pipeline {
    /// Starts a stream (its header first) that compresses into `spill`.
    pub fn new(spill: Spill) -> io::Result<Pipeline> {
        let mut enc = zstd::stream::write::Encoder::new(spill, ZSTD_LEVEL)?;
        enc.include_checksum(true)?;
        Ok(Pipeline {
            batch: Batch::default(),
            events: 0,
            here: Some(StreamWriter::new(enc)?),
            worker: None,
            shared: Arc::new(Shared::default()),
            broken: false,
        })
    }

    /// Appends `event`. An event that cannot be encoded adds nothing.
    pub fn push(&mut self, event: &Event) -> Result<(), PushError> {
        self.add(|batch| batch.push(event).map(|()| true)).map(drop)
    }

    /// Appends an `Event::Buffered` whose records `fill` writes in place
    /// ([`Batch::push_buffered`]); false if `fill` did not (nothing added).
    pub fn push_buffered(
        &mut self,
        tid: Tid,
        len: usize,
        fill: impl FnOnce(&mut [u8]) -> bool,
    ) -> Result<bool, PushError> {
        self.add(|batch| batch.push_buffered(tid, len, fill))
    }

    /// Frames one event into the batch with `frame` (which answers whether
    /// it added one), and hands the batch over once it is full.
    fn add(
        &mut self,
        frame: impl FnOnce(&mut Batch) -> Result<bool, EncodeError>,
    ) -> Result<bool, PushError> {
        if self.broken {
            self.check()?;
        }
        if !frame(&mut self.batch)? {
            return Ok(false);
        }
        self.events += 1;
        if self.batch.len() >= BATCH {
            self.hand_over(true)?;
        }
        Ok(true)
    }

    /// Events pushed so far.
    pub fn events(&self) -> u64 {
        self.events
    }

    /// Compressed bytes held in memory, as of the last batch compressed.
    pub fn held(&self) -> usize {
        self.shared.held.load(Ordering::Relaxed)
    }

    /// Makes every event pushed so far readable from the file (ends the
    /// current zstd block), and waits for it.
    pub fn flush(&mut self) -> io::Result<()> {
        self.hand_over(false)?;
        self.run(Job::Flush, true)
    }

    /// Writes what memory holds, and the rest of the stream after it, to
    /// `file` (without waiting for the thread).
    pub fn spill_to(&mut self, file: File) -> io::Result<()> {
        self.hand_over(false)?;
        self.run(Job::SpillTo(file), false)
    }

    /// Writes the end record and ends the zstd frame.
    pub fn finish(mut self) -> io::Result<()> {
        self.hand_over(false)?;
        self.run(Job::Finish, true)
    }

    /// The error the stream met, if any; once reported, that it is closed.
    fn check(&mut self) -> io::Result<()> {
        if self.broken {
            return Err(io::Error::other(
                "the event stream was closed by an earlier write error",
            ));
        }
        let mut failed = self.shared.failed.lock().unwrap_or_else(|e| e.into_inner());
        match failed.take() {
            Some(e) => {
                self.broken = true;
                Err(e)
            }
            None => Ok(()),
        }
    }

    /// Writes the records framed so far, on the stream's thread (started
    /// now if `start` and it has not been).
    fn hand_over(&mut self, start: bool) -> io::Result<()> {
        self.check()?;
        if self.batch.is_empty() {
            return Ok(());
        }
        if start && self.worker.is_none() {
            self.start()?;
        }
        let next = match &self.worker {
            Some(w) => w.spent.try_recv().unwrap_or_default(),
            None => Batch::default(),
        };
        let full = std::mem::replace(&mut self.batch, next);
        self.run(Job::Write(full), false)
    }

    /// Does `job` here, or has the thread do it (and waits if `wait`).
    fn run(&mut self, job: Job, wait: bool) -> io::Result<()> {
        match &self.worker {
            None => {
                let spent = apply(&mut self.here, job, &self.shared);
                if let Some(mut b) = spent {
                    if self.batch.is_empty() {
                        // Reuse its memory.
                        b.clear();
                        self.batch = b;
                    }
                }
            }
            Some(w) => {
                let jobs = w.jobs.as_ref().ok_or_else(thread_gone)?;
                if wait {
                    let (done, answer) = mpsc::sync_channel(1);
                    jobs.send((job, Some(done))).map_err(|_| thread_gone())?;
                    answer.recv().map_err(|_| thread_gone())?;
                } else {
                    jobs.send((job, None)).map_err(|_| thread_gone())?;
                }
            }
        }
        self.check()
    }

    /// Starts the stream's thread, which takes the stream.
    fn start(&mut self) -> io::Result<()> {
        let Some(stream) = self.here.take() else {
            // Closed by an error the recorder's thread has seen.
            return Err(io::Error::other("the event stream is closed"));
        };
        let (jobs, inbox) = mpsc::sync_channel(QUEUE);
        let (give_back, spent) = mpsc::sync_channel(QUEUE + 2);
        let shared = Arc::clone(&self.shared);
        let thread = rrtest_sys::signals::spawn_without_signals("rrtest-trace", move || {
            run_thread(stream, &inbox, &give_back, &shared)
        })?;
        self.worker = Some(Worker {
            jobs: Some(jobs),
            spent,
            thread: Some(thread),
        });
        Ok(())
    }
}

/// The stream's thread: does the jobs until the queue closes.
fn run_thread(
    stream: Stream,
    inbox: &Receiver<(Job, Option<SyncSender<()>>)>,
    give_back: &SyncSender<Batch>,
    shared: &Shared,
) {
    // Only a cost if it fails: the thread then shares the program's CPU.
    let _ = rrtest_sys::cpu::leave_bound_cpu();
    let mut stream = Some(stream);
    for (job, done) in inbox {
        if let Some(mut batch) = apply(&mut stream, job, shared) {
            batch.clear();
            let _ = give_back.try_send(batch);
        }
        if let Some(done) = done {
            let _ = done.send(());
        }
    }
}

/// Does `job` to `stream`, which an error closes (`None`, the error in
/// `shared`); gives a written batch back.
fn apply(stream: &mut Option<Stream>, job: Job, shared: &Shared) -> Option<Batch> {
    let mut spent = None;
    let result = match (stream.as_mut(), job) {
        (None, Job::Write(batch)) => {
            spent = Some(batch);
            Ok(())
        }
        (None, _) => Ok(()),
        (Some(s), Job::Write(batch)) => {
            let written = s.write_batch(&batch);
            if written.is_ok() {
                let held = match s.get_ref().get_ref() {
                    Spill::Memory(v) => v.len(),
                    Spill::File(_) => 0,
                };
                shared.held.store(held, Ordering::Relaxed);
            }
            spent = Some(batch);
            written
        }
        (Some(s), Job::Flush) => s.get_mut().flush(),
        (Some(s), Job::SpillTo(mut file)) => {
            let spill = s.get_mut().get_mut();
            let written = match spill {
                Spill::Memory(bytes) => file.write_all(bytes),
                Spill::File(_) => Ok(()),
            };
            if written.is_ok() {
                *spill = Spill::File(file);
                shared.held.store(0, Ordering::Relaxed);
            }
            written
        }
        (Some(_), Job::Finish) => match stream.take() {
            Some(s) => s.finish().and_then(|enc| enc.finish()).map(drop),
            None => Ok(()),
        },
    };
    if let Err(e) = result {
        *stream = None;
        let mut failed = shared.failed.lock().unwrap_or_else(|e| e.into_inner());
        failed.get_or_insert(e);
    }
    spent
}
