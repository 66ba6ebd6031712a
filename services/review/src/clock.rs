//! The review clock of a task on the working calendar: three working days (72 working hours)
//! from the effective start of the submission; stopped while the task waits on the applicant and
//! resumed, with the working time left, when the applicant resubmits (the recipe of
//! `calendar.rs`, "Pausing").

use chrono::{DateTime, Duration, Utc};

use crate::calendar::WorkingCalendar;
use crate::view;

/// Working days a reviewer has for a task.
pub const REVIEW_WORKING_DAYS: u32 = 3;

/// The whole working time of a task: 72 hours of working days.
pub fn budget() -> Duration {
    Duration::hours(24 * i64::from(REVIEW_WORKING_DAYS))
}

/// Where the clock starts and when the task is due, for a subject submitted at `submitted`.
pub fn start(
    calendar: &WorkingCalendar,
    submitted: DateTime<Utc>,
    subject: &str,
) -> (DateTime<Utc>, DateTime<Utc>) {
    let clock_start = view::micros(calendar.effective_start(submitted));
    let deadline = view::micros(calendar.deadline(submitted, REVIEW_WORKING_DAYS));
    warn_uncovered(calendar, submitted, deadline, subject);
    (clock_start, deadline)
}

/// The working time used in total when the clock stops at `at`, in microseconds.
pub fn stop(
    calendar: &WorkingCalendar,
    clock_start: DateTime<Utc>,
    used_micros: i64,
    at: DateTime<Utc>,
) -> i64 {
    let ran = calendar.working_time_between(clock_start, at);
    used_micros.saturating_add(ran.num_microseconds().unwrap_or(i64::MAX))
}

/// Where the clock restarts and the new deadline when the applicant resubmits at `resumed`,
/// with `used_micros` of the 72 working hours already used.
pub fn resume(
    calendar: &WorkingCalendar,
    used_micros: i64,
    resumed: DateTime<Utc>,
    subject: &str,
) -> (DateTime<Utc>, DateTime<Utc>) {
    let remaining = budget() - Duration::microseconds(used_micros);
    let clock_start = view::micros(calendar.effective_start(resumed));
    let deadline = view::micros(calendar.resume_deadline(resumed, remaining));
    warn_uncovered(calendar, resumed, deadline, subject);
    (clock_start, deadline)
}

fn warn_uncovered(
    calendar: &WorkingCalendar,
    from: DateTime<Utc>,
    deadline: DateTime<Utc>,
    subject: &str,
) {
    let years = calendar.uncovered_years_between(from, deadline);
    if !years.is_empty() {
        tracing::warn!(
            subject,
            %deadline,
            uncovered_years = ?years,
            covered_years = ?calendar.covered_years(),
            "review deadline computed across year(s) the working calendar does not cover: \
             their holidays are not counted; add them to the calendar file (KG_CALENDAR_FILE)"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn a_stopped_clock_resumes_with_the_time_left() {
        let c = WorkingCalendar::china();
        // Friday 2026-11-20 10:00 Beijing: due Wednesday 2026-11-25 10:00.
        let submitted = utc("2026-11-20T02:00:00Z");
        let (clock_start, deadline) = start(&c, submitted, "applications/x");
        assert_eq!(clock_start, submitted);
        assert_eq!(deadline, utc("2026-11-25T02:00:00Z"));
        // Changes requested Monday 10:00: Friday 14 h + Monday 10 h used.
        let used = stop(&c, clock_start, 0, utc("2026-11-23T02:00:00Z"));
        assert_eq!(used, Duration::hours(24).num_microseconds().unwrap());
        // Resubmitted Thursday 09:00 with 48 h left: Thursday 15 h + Friday 24 h + Monday 9 h.
        let (clock_start, deadline) = resume(&c, used, utc("2026-11-26T01:00:00Z"), "x");
        assert_eq!(clock_start, utc("2026-11-26T01:00:00Z"));
        assert_eq!(deadline, utc("2026-11-30T01:00:00Z"));
        // Already overdue when paused: due at once (at the effective start).
        let (_, deadline) = resume(
            &c,
            budget().num_microseconds().unwrap() + 5,
            clock_start,
            "x",
        );
        assert_eq!(deadline, clock_start);
    }
}
