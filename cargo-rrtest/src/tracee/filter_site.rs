//! Where replay's hot-loop filter (`replayer/session/point_filter.rs`) can
//! patch the code to count and compare the passes through an execution
//! point's ip: which instructions a 5-byte `jmp rel32` displaces, and
//! whether that is safe.
//!
//! The patch goes at the point's ip when it can: the instructions it covers
//! (whole ones, at least five bytes) run relocated in the trampoline after
//! the comparison. It cannot when a branch lands inside those bytes: the
//! common case is a loop's closing `jcc` (two bytes) followed by the loop's
//! exit, which the loop's entry test jumps to. Then the patch goes a few
//! instructions earlier, on the straight run of code that falls through to
//! the point (the *lead-in*): the trampoline runs the lead-in first, so the
//! comparison sees the state at the point, and every pass through the
//! point comes through the patch, as long as nothing branches into the
//! lead-in or to the point itself.
//!
//! ```text
//!   direct:   [point: jmp tramp | displaced ...]   tramp: compare; displaced; jmp back
//!   lead-in:  [start: jmp tramp | ...] point ...    tramp: lead-in; compare; (displaced); jmp back
//! ```
//!
//! A displaced `call` (direct, or through a rip-relative pointer) is allowed
//! as the last displaced instruction: the trampoline pushes the original
//! return address itself and jumps to the callee, so the stack holds what
//! the program's own call writes.
//!
//! The code before the point is decoded backwards by decoding forwards from
//! every offset of the bytes before it (x86 code resynchronises within a
//! few instructions): a lead-in instruction is used only when every
//! decoding that starts at least [`RUN_UP`] bytes before it agrees that it
//! is one. Branches into the patched bytes are looked for in the code
//! around them ([`branch_into`]); one from farther away is not seen (the
//! filter's known limit: it shows as a divergence or a failed search).
//!
//! [`find`] reads a stopped thread's code; the rest are pure functions of
//! the code bytes.

use iced_x86::{Code, Decoder, DecoderOptions, FlowControl, Instruction};
use rrtest_sys::RemoteMem;

/// Length of `jmp rel32`.
pub const JMP_LEN: u64 = 5;

/// Bytes of code read before and after a point, searched for branches into
/// its patch and for a lead-in.
const NEIGHBOURHOOD: u64 = 256;

/// The page size.
const PAGE: u64 = 4096;

/// The most instructions a lead-in holds.
const MAX_LEAD_IN: usize = 8;

/// Bytes a decoding of the code before a point must have run before an
/// instruction for its vote on that instruction to count.
const RUN_UP: u64 = 16;

/// Why a site cannot be patched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal(pub String);

/// The stretch of code a filter patches for a point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Site {
    /// The point's ip.
    pub point: u64,
    /// Where the patch's `jmp` is written: the point, or the first
    /// instruction of the lead-in.
    pub start: u64,
    /// The instructions from `start` to the point, run in the trampoline
    /// before the comparison (empty: the patch is at the point).
    pub lead_in: Vec<Instruction>,
    /// The instructions from the point on that the patch covers, run in
    /// the trampoline after a miss (empty: the lead-in alone is long
    /// enough, and the trampoline jumps back to the point). A `call` may
    /// be the last of them.
    pub moved: Vec<Instruction>,
}

impl Site {
    /// The first byte after the patched instructions.
    pub fn end(&self) -> u64 {
        self.point + self.moved.iter().map(|i| i.len() as u64).sum::<u64>()
    }

    /// The patch's length: the whole instructions it covers.
    pub fn patch_len(&self) -> u64 {
        self.end() - self.start
    }

    /// Whether the last moved instruction is a call (the trampoline emulates
    /// it and does not jump back).
    pub fn ends_in_call(&self) -> bool {
        self.moved.last().is_some_and(is_call)
    }
}

/// Where the filter would patch for a point at `ip` in the stopped thread
/// `tid`: [`plan`] over the code around it, refused also where the code is
/// in writable memory per `maps` (the text of `/proc/PID/maps`: generated
/// code, which a digest may cover) or in the fixed page.
pub fn find(tid: i32, ip: u64, maps: &str) -> Result<Site, Refusal> {
    let mem = RemoteMem::new(tid);
    // The code around the point: a neighbourhood, or as much of it as its
    // page holds where the next or previous page is not readable.
    let before = mem
        .read_vec(ip.saturating_sub(NEIGHBOURHOOD), NEIGHBOURHOOD as usize)
        .or_else(|_| {
            let back = NEIGHBOURHOOD.min(ip % PAGE);
            mem.read_vec(ip - back, back as usize)
        })
        .unwrap_or_default();
    let after = mem
        .read_vec(ip, NEIGHBOURHOOD as usize)
        .or_else(|_| mem.read_vec(ip, (PAGE - ip % PAGE).max(32) as usize))
        .or_else(|_| mem.read_vec(ip, 16))
        .map_err(|e| Refusal(format!("reading the site: {e}")))?;
    let site = plan(&before, &after, ip)?;
    let fixed = rrtest_abi::FIXED_PAGE_ADDR..rrtest_abi::FIXED_PAGE_ADDR + PAGE;
    if fixed.contains(&site.start) || fixed.contains(&ip) {
        return Err(Refusal("the site is in the fixed page".into()));
    }
    if mapping_is_writable(maps, site.start) || mapping_is_writable(maps, site.end()) {
        return Err(Refusal("the site is in writable memory".into()));
    }
    Ok(site)
}

/// The most instructions [`ahead`] follows from an ip.
const MAX_AHEAD: usize = 8;

/// The first place at or after `ip` that stopped thread `tid` reaches by
/// straight-line code and forward direct jumps, and that the filter can
/// patch (`patchable`: [`find`]'s answer, which the caller may keep):
/// where the recorder puts a point it would take at `ip`
/// (a spin probe's address), when the filter cannot patch `ip` itself (a
/// `jmp` followed by a branch target, a site whose lead-in the code before
/// it does not show). Replay searches an unpatchable point stop by stop, at
/// a few tens of microseconds a pass, and gives up after 30 s: a spinning
/// stealer's point in a debug build's loop, some 900,000 passes deep, was
/// not found (crossbeam-deque's `lifo::no_starvation`).
///
/// Backward jumps and calls are not followed: a loop's head, or a callee's
/// entry, is passed on other ways too (a stealer's loop head at each item
/// it takes, where the `jmp` back after its `pause` is passed only while it
/// spins), so a probe there would take a thread at work for one spinning
/// (`threads::stealers_all_served_ends` ran past its 60 s so). `None` where
/// the way forward branches on a condition, backwards or indirectly,
/// calls, returns, traps or makes a syscall within [`MAX_AHEAD`]
/// instructions.
pub fn ahead(tid: i32, ip: u64, patchable: impl FnMut(u64) -> bool) -> Option<u64> {
    let mem = RemoteMem::new(tid);
    let code_at = |at: u64| {
        // An instruction is at most 15 bytes; fewer where its page ends
        // and the next is not readable.
        let to_page_end = (PAGE - at % PAGE).min(15) as usize;
        mem.read_vec(at, 15)
            .or_else(|_| mem.read_vec(at, to_page_end))
            .ok()
    };
    ahead_in(ip, code_at, patchable)
}

/// [`ahead`] over code read by `code_at` (the bytes at an address, up to
/// an instruction's length), with `patchable` telling the places the
/// filter can patch.
pub fn ahead_in(
    ip: u64,
    code_at: impl Fn(u64) -> Option<Vec<u8>>,
    mut patchable: impl FnMut(u64) -> bool,
) -> Option<u64> {
    let mut at = ip;
    for _ in 0..=MAX_AHEAD {
        if patchable(at) {
            return Some(at);
        }
        let code = code_at(at)?;
        let insn = Decoder::with_ip(64, &code, at, DecoderOptions::NONE).decode();
        at = match insn.flow_control() {
            _ if insn.is_invalid() => return None,
            FlowControl::Next if straight(&insn) && !is_rep_string(&insn) => insn.next_ip(),
            FlowControl::UnconditionalBranch
                if insn.is_jmp_short_or_near() && insn.near_branch_target() > at =>
            {
                insn.near_branch_target()
            }
            _ => return None,
        };
    }
    None
}

/// Whether the mapping holding `addr` in `maps` (the text of
/// `/proc/PID/maps`) is writable; unknown counts as writable.
pub fn mapping_is_writable(maps: &str, addr: u64) -> bool {
    maps.lines()
        .find_map(|l| {
            let mut parts = l.split_whitespace();
            let (a, b) = parts.next()?.split_once('-')?;
            let (a, b) = (
                u64::from_str_radix(a, 16).ok()?,
                u64::from_str_radix(b, 16).ok()?,
            );
            (a..b)
                .contains(&addr)
                .then(|| parts.next().map(|p| p.contains('w')))?
        })
        .unwrap_or(true)
}

/// Where to patch for a point at `point`: `before` holds the code bytes
/// that end at `point` (as many as are readable, up to a few hundred),
/// `after` those from `point` on (at least 32).
pub fn plan(before: &[u8], after: &[u8], point: u64) -> Result<Site, Refusal> {
    let back = Backwards::decode(before, point);
    let direct = displaced(after, point, JMP_LEN, None).and_then(|moved| {
        let site = Site {
            point,
            start: point,
            lead_in: Vec::new(),
            moved,
        };
        check_region(&back, after, &site)?;
        Ok(site)
    });
    let first_refusal = match direct {
        Ok(site) => return Ok(site),
        Err(e) => e,
    };
    let preceding = back.preceding();
    for k in 1..=preceding.len() {
        let lead_in = preceding[preceding.len() - k..].to_vec();
        if !lead_in.iter().all(straight) {
            // Farther back crosses a branch, call or syscall: no lead-in.
            break;
        }
        let lead_len = point - lead_in[0].ip();
        let need = JMP_LEN.saturating_sub(lead_len);
        let moved = if need == 0 {
            Vec::new()
        } else {
            match displaced(after, point, need, lead_in.last()) {
                Ok(moved) => moved,
                Err(_) => continue,
            }
        };
        let site = Site {
            point,
            start: lead_in[0].ip(),
            lead_in,
            moved,
        };
        if check_region(&back, after, &site).is_ok() {
            return Ok(site);
        }
    }
    Err(first_refusal)
}

/// Whether `i` only falls through to the next instruction (a lead-in's
/// instructions must).
fn straight(i: &Instruction) -> bool {
    i.flow_control() == FlowControl::Next && !matches!(i.code(), Code::Syscall | Code::Sysenter)
}

/// Whether `i` is a `rep`/`repne` string instruction: a thread stopped in
/// it may be between two of its iterations, which no point can name.
pub fn is_rep_string(i: &Instruction) -> bool {
    i.is_string_instruction() && (i.has_rep_prefix() || i.has_repne_prefix())
}

/// A call the trampoline can emulate: `call rel32`, or `call [rip+disp32]`.
fn is_call(i: &Instruction) -> bool {
    match i.code() {
        Code::Call_rel32_64 => true,
        Code::Call_rm64 => i.is_ip_rel_memory_operand(),
        _ => false,
    }
}

/// Decodes the whole instructions from `at` covering at least `need`
/// bytes. `prev` is the instruction before `at` when it is displaced too.
pub fn displaced(
    code: &[u8],
    at: u64,
    need: u64,
    prev: Option<&Instruction>,
) -> Result<Vec<Instruction>, Refusal> {
    let mut decoder = Decoder::with_ip(64, code, at, DecoderOptions::NONE);
    let mut out: Vec<Instruction> = Vec::new();
    let mut len = 0;
    while len < need {
        if !decoder.can_decode() {
            return Err(Refusal("the site's code ends too soon".into()));
        }
        let insn = decoder.decode();
        if insn.is_invalid() {
            return Err(Refusal(format!("undecodable code at {:#x}", insn.ip())));
        }
        if let Some(p) = out.last().or(prev).filter(|p| ends_flow(p)) {
            // Reached only by a branch from elsewhere, into the patch.
            return Err(Refusal(format!(
                "the displaced instruction at {:#x} follows a jump or return at {:#x}",
                insn.ip(),
                p.ip()
            )));
        }
        let last = len + insn.len() as u64 >= need;
        match insn.flow_control() {
            FlowControl::Call | FlowControl::IndirectCall if last && is_call(&insn) => {}
            FlowControl::Call
            | FlowControl::IndirectCall
            | FlowControl::Interrupt
            | FlowControl::Exception
            | FlowControl::XbeginXabortXend => {
                return Err(Refusal(format!(
                    "a displaced instruction at {:#x} calls or traps",
                    insn.ip()
                )))
            }
            _ => {}
        }
        if matches!(insn.code(), Code::Syscall | Code::Sysenter) {
            return Err(Refusal("a displaced syscall".into()));
        }
        len += insn.len() as u64;
        out.push(insn);
    }
    Ok(out)
}

/// Whether `i` never falls through (a jump, a return).
fn ends_flow(i: &Instruction) -> bool {
    matches!(
        i.flow_control(),
        FlowControl::UnconditionalBranch | FlowControl::IndirectBranch | FlowControl::Return
    )
}

/// Whether `i` is a direct branch or call (its target known).
fn direct_target(i: &Instruction) -> Option<u64> {
    matches!(
        i.flow_control(),
        FlowControl::ConditionalBranch | FlowControl::UnconditionalBranch | FlowControl::Call
    )
    .then(|| i.near_branch_target())
    .filter(|&t| t != 0)
}

/// Checks that nothing branches where the patch would break it: no moved
/// branch targets the patched bytes (its relocated copy would skip the
/// count), and no branch near the site lands inside the patch or, with a
/// lead-in, on the point (a pass that skipped the comparison).
fn check_region(back: &Backwards, after: &[u8], site: &Site) -> Result<(), Refusal> {
    let end = site.end();
    if let Some(i) = site
        .moved
        .iter()
        .find(|i| !is_call(i) && direct_target(i).is_some_and(|t| (site.start..end).contains(&t)))
    {
        return Err(Refusal(format!(
            "a displaced branch at {:#x} targets the patched bytes",
            i.ip()
        )));
    }
    let inside = |i: &Instruction| {
        direct_target(i).is_some_and(|t| (site.start + 1..end.max(site.point + 1)).contains(&t))
    };
    // The code from the point on, decoded from there; the code before it
    // (the lead-in's instructions are straight: no branches).
    let mut d = Decoder::with_ip(64, after, site.point, DecoderOptions::NONE);
    let ahead = std::iter::from_fn(|| d.can_decode().then(|| d.decode()))
        .take_while(|i| !i.is_invalid())
        .find(|i| inside(i));
    match ahead.or_else(|| back.plausible().into_iter().find(|i| inside(i))) {
        Some(i) => Err(Refusal(format!(
            "a branch at {:#x} targets the inside of the patched bytes",
            i.ip()
        ))),
        None => Ok(()),
    }
}

/// A direct branch or call near `site` that targets `site + 1 .. site +
/// len`: found in `after` (the code from `site` on, decoded from there) and
/// in `before` (the bytes just before `site`, decoded backwards:
/// [`Backwards`]). Best effort: a branch from farther away is not seen (the
/// module comment's known limit).
pub fn branch_into(before: &[u8], after: &[u8], site: u64, len: u64) -> Option<u64> {
    let inside =
        |i: &Instruction| direct_target(i).is_some_and(|t| (site + 1..site + len).contains(&t));
    let mut d = Decoder::with_ip(64, after, site, DecoderOptions::NONE);
    std::iter::from_fn(|| d.can_decode().then(|| d.decode()))
        .take_while(|i| !i.is_invalid())
        .chain(Backwards::decode(before, site).plausible())
        .find(|i| inside(i))
        .map(|i| i.ip())
}

/// The instructions just before `site` (at most [`MAX_LEAD_IN`], in
/// order), decoded from `before`, the bytes that end at `site`: the run of
/// agreed ones ([`Backwards`]) that ends at `site`.
pub fn preceding(before: &[u8], site: u64) -> Vec<Instruction> {
    Backwards::decode(before, site).preceding()
}

/// The code before a site decoded backwards: decoded forwards from each
/// offset of the bytes before it, keeping the decodings whose instructions
/// end exactly at the site (x86 decoding falls into step within a few
/// instructions, so most of them agree near the site).
///
/// A decoding from one offset goes on as the decoding from the offset
/// after its first instruction does, so each offset is decoded once and
/// the decodings are chains through those instructions: 256 decodes for
/// 256 bytes, where decoding each start to the site took about 60 times as
/// many (265 us a site in a release build, at each spin check of a debug
/// build's threads).
struct Backwards {
    /// The address of the first of the bytes read before the site.
    base: u64,
    /// The instruction at each offset, where one decodes there and ends
    /// at or before the site.
    insns: Vec<Option<Instruction>>,
    /// The offsets whose decoding ends exactly at the site, in order.
    starts: Vec<usize>,
    /// For each offset: in how many of the decodings that started at
    /// least [`RUN_UP`] bytes before it it is an instruction.
    votes: Vec<usize>,
}

impl Backwards {
    fn decode(before: &[u8], site: u64) -> Backwards {
        let n = before.len();
        let base = site - n as u64;
        // An instruction cut by the site's address decodes invalid there.
        let insns: Vec<Option<Instruction>> = (0..n)
            .map(|k| {
                let i = Decoder::with_ip(64, &before[k..], base + k as u64, DecoderOptions::NONE)
                    .decode();
                (!i.is_invalid()).then_some(i)
            })
            .collect();
        // Whether the decoding from each offset ends exactly at the site.
        let mut ends = vec![false; n + 1];
        ends[n] = true;
        for k in (0..n).rev() {
            ends[k] = insns[k].is_some_and(|i| ends[k + i.len()]);
        }
        let starts: Vec<usize> = (0..n).filter(|&k| ends[k]).collect();
        let mut back = Backwards {
            base,
            insns,
            starts,
            votes: vec![0; n],
        };
        for &start in &back.starts {
            let mut k = start;
            while k < n {
                if start as u64 + RUN_UP <= k as u64 {
                    back.votes[k] += 1;
                }
                k += back.insns[k]
                    .expect("a decoding that ends at the site")
                    .len();
            }
        }
        back
    }

    /// The instructions of the decoding from offset `start`, in order.
    fn chain(&self, start: usize) -> impl Iterator<Item = &Instruction> + '_ {
        let mut k = start;
        std::iter::from_fn(move || {
            let i = self.insns.get(k)?.as_ref()?;
            k += i.len();
            Some(i)
        })
    }

    /// Whether every decoding that started [`RUN_UP`] bytes or more before
    /// `ip` has an instruction there (None: no decoding started that far
    /// before it, so nothing tells).
    fn agreed(&self, ip: u64) -> Option<bool> {
        let voters = self
            .starts
            .partition_point(|&start| self.base + start as u64 + RUN_UP <= ip);
        let votes = ip
            .checked_sub(self.base)
            .and_then(|k| self.votes.get(k as usize))
            .copied()
            .unwrap_or(0);
        (voters > 0).then_some(votes == voters)
    }

    /// The run of agreed instructions that ends at the site, at most
    /// [`MAX_LEAD_IN`], in order.
    fn preceding(&self) -> Vec<Instruction> {
        let Some(&first) = self.starts.first() else {
            return Vec::new();
        };
        let reference: Vec<Instruction> = self.chain(first).copied().collect();
        let mut out: Vec<Instruction> = reference
            .iter()
            .rev()
            .take(MAX_LEAD_IN)
            .take_while(|i| self.agreed(i.ip()) == Some(true))
            .copied()
            .collect();
        out.reverse();
        out
    }

    /// The instructions that may be real, once each: the agreed ones, and
    /// any of a decoding where nothing tells (the first bytes).
    fn plausible(&self) -> Vec<Instruction> {
        let mut seen = vec![false; self.insns.len()];
        let mut out = Vec::new();
        for &start in &self.starts {
            for i in self.chain(start) {
                let k = (i.ip() - self.base) as usize;
                if !std::mem::replace(&mut seen[k], true) && self.agreed(i.ip()) != Some(false) {
                    out.push(*i);
                }
            }
        }
        out
    }
}

#[cfg(test)]
#[path = "filter_site_tests.rs"]
mod tests;
