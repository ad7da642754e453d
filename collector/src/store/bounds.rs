//! What one piece of input may cost, enforced at the store's door.
//!
//! Names that identify an instance are refused past [`MAX_NAME_BYTES`]
//! (cutting them could merge two instances into one); everything else a
//! sample or a stall carries — gauge, task and runtime names, stacks and
//! their frames, stall annotations — is cut to fixed sizes and the cuts are
//! counted. So the history cap holds whatever a sender puts in a field, and
//! no answer built from the store (`/metrics`, stalls, profiles) outgrows
//! what the cap allows.

use lagscope_wire::{Sample, StallEvent};

/// Longest service or instance name accepted.
pub const MAX_NAME_BYTES: usize = 256;
/// Longest gauge, task or runtime name kept; longer ones are cut.
pub const MAX_LABEL_BYTES: usize = 256;
/// Longest function name (stack frame) kept; longer ones are cut.
pub const MAX_FRAME_BYTES: usize = 512;
/// Frames kept per stack, innermost first.
pub const MAX_FRAMES: usize = 128;
/// Distinct stacks kept per stall.
pub const MAX_STACKS_PER_STALL: usize = 8;
/// Longest stall annotation (blocking function, span, spawn site, trace
/// parent) or agent notice kept.
pub const MAX_NOTE_BYTES: usize = 1024;

/// Whether `name` can name a service or instance.
pub fn name_fits(name: &str) -> bool {
    name.len() <= MAX_NAME_BYTES
}

/// Cuts `s` to at most `max` bytes on a character boundary; whether it cut.
fn cut(s: &mut String, max: usize) -> bool {
    if s.len() <= max {
        return false;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.truncate(end);
    true
}

/// Cuts a stack to [`MAX_FRAMES`] frames of [`MAX_FRAME_BYTES`]; the cuts made.
fn cut_frames(frames: &mut Vec<String>) -> u64 {
    let mut cuts = u64::from(frames.len() > MAX_FRAMES);
    frames.truncate(MAX_FRAMES);
    for f in frames {
        cuts += u64::from(cut(f, MAX_FRAME_BYTES));
    }
    cuts
}

/// Cuts a stall to the bounds above; the cuts made.
pub fn bound_stall(stall: &mut StallEvent) -> u64 {
    let mut cuts = u64::from(stall.stacks.len() > MAX_STACKS_PER_STALL);
    stall.stacks.truncate(MAX_STACKS_PER_STALL);
    for s in &mut stall.stacks {
        cuts += cut_frames(&mut s.frames);
    }
    cuts += u64::from(cut(&mut stall.runtime, MAX_LABEL_BYTES));
    for note in [
        &mut stall.blocking_function,
        &mut stall.spawned_at,
        &mut stall.span,
        &mut stall.trace_parent,
    ]
    .into_iter()
    .flatten()
    {
        cuts += u64::from(cut(note, MAX_NOTE_BYTES));
    }
    cuts
}

/// Cuts everything in a sample but its service and instance names to the
/// bounds above; the cuts made.
pub fn bound_sample(sample: &mut Sample) -> u64 {
    let mut cuts = 0;
    for r in &mut sample.runtimes {
        cuts += u64::from(cut(&mut r.name, MAX_LABEL_BYTES));
    }
    for g in &mut sample.gauges {
        cuts += u64::from(cut(&mut g.name, MAX_LABEL_BYTES));
    }
    for t in &mut sample.tasks {
        cuts += u64::from(cut(&mut t.name, MAX_LABEL_BYTES));
    }
    for s in &mut sample.stalls {
        cuts += bound_stall(s);
    }
    for p in &mut sample.profiles {
        for s in &mut p.stacks {
            cuts += cut_frames(&mut s.frames);
        }
    }
    if let Some(h) = &mut sample.heap {
        for s in &mut h.sites {
            cuts += cut_frames(&mut s.frames);
        }
    }
    let max_notices = lagscope_wire::api::MAX_NOTICES;
    cuts += u64::from(sample.notices.len() > max_notices);
    sample.notices.truncate(max_notices);
    for n in &mut sample.notices {
        cuts += u64::from(cut(n, MAX_NOTE_BYTES));
    }
    cuts
}

#[cfg(test)]
mod tests {
    use super::*;
    use lagscope_wire::{StallDetection, StallStack};

    fn stall(frames: usize, frame_bytes: usize, stacks: usize) -> StallEvent {
        {
            let mut stall_event = StallEvent::default();
            stall_event.id = 1;
            stall_event.runtime = "main".into();
            stall_event.detection = StallDetection::PollHooks;
            stall_event.tid = 1;
            stall_event.duration_us = 1;
            stall_event.blocking_function = Some("é".repeat(MAX_NOTE_BYTES));
            stall_event.stacks = vec![
                {
                    let mut stall_stack = StallStack::default();
                    stall_stack.frames = vec!["f".repeat(frame_bytes); frames];
                    stall_stack.count = 1;
                    stall_stack
                };
                stacks
            ];
            stall_event
        }
    }

    #[test]
    fn a_huge_stall_is_cut_to_fixed_bounds_on_character_boundaries() {
        let mut s = stall(1000, 2000, 20);
        let cuts = bound_stall(&mut s);
        assert!(cuts > 0);
        assert_eq!(s.stacks.len(), MAX_STACKS_PER_STALL);
        assert!(s.stacks.iter().all(|s| s.frames.len() == MAX_FRAMES));
        assert!(s.stacks[0]
            .frames
            .iter()
            .all(|f| f.len() == MAX_FRAME_BYTES));
        let note = s.blocking_function.expect("kept");
        assert!(note.len() <= MAX_NOTE_BYTES && note.chars().all(|c| c == 'é'));
    }

    #[test]
    fn a_stall_within_bounds_is_left_alone() {
        let mut s = stall(20, 40, 2);
        s.blocking_function = Some("app::handler".into());
        let before = s.clone();
        assert_eq!(bound_stall(&mut s), 0);
        assert_eq!(s, before);
    }

    #[test]
    fn names_past_the_limit_do_not_fit() {
        assert!(name_fits(&"a".repeat(MAX_NAME_BYTES)));
        assert!(!name_fits(&"a".repeat(MAX_NAME_BYTES + 1)));
    }
}
