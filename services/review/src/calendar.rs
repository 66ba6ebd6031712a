//! The working-day calendar behind review deadlines.
//!
//! A review task is due three working days after its subject was submitted. This module
//! decides what a working day is and turns "N working days" into an instant.
//!
//! # Calendar files
//!
//! A calendar is a YAML file:
//!
//! ```yaml
//! timezone: Asia/Shanghai         # required; an IANA time zone name
//! weekend: [Saturday, Sunday]     # optional; default [Saturday, Sunday]; [] = no weekend
//! cutoff: "17:30"                 # optional; local time of day "HH:MM" (or "HH:MM:SS");
//!                                 #   absent or null = no cut-off
//! years: [2026]                   # optional; the years the file covers (see below)
//! holidays:                       # optional; YYYY-MM-DD, non-working even on weekdays
//!   - 2026-10-01
//! extra_working_days:             # optional; YYYY-MM-DD, make-up working days,
//!   - 2026-10-10                  #   working even on weekends
//! ```
//!
//! - Day names in `weekend` are English, full or three-letter, in any case (`Sat`, `saturday`).
//! - A date is a working day when it is an extra working day, or else when it is neither a
//!   holiday nor a weekend day.
//! - **Covered years.** A file covers the years listed in `years`; without `years`, it covers
//!   every year in which it lists at least one holiday or extra working day. With `years`, every
//!   listed date must fall in one of them. Dates outside the covered years follow the weekend
//!   rule only; [`WorkingCalendar::covers`] and [`WorkingCalendar::uncovered_years_between`] let
//!   the service warn when a deadline reaches past the covered range (typically: next year's
//!   official holidays have not been published or added yet).
//! - Unknown keys are rejected (a misspelt `extra_workdays` is an error, not a silently ignored
//!   field).
//!
//! Loading fails with a [`CalendarError`] on: invalid YAML or a value of the wrong shape, an
//! unknown time zone, a date that is not a real `YYYY-MM-DD` date, an unknown weekday, a date
//! listed both as a holiday and as an extra working day, a cut-off that is not a time of day
//! between 00:00 and 23:59:59, a listed date outside explicit `years`, a weekend of all seven
//! days, or a stretch of more than [`MAX_NON_WORKING_RUN`] consecutive non-working days.
//!
//! # Working time
//!
//! Working time is a clock that runs only on working days: during the whole of each working
//! day (00:00 to 24:00 local time in the calendar's zone, not office hours), and not at all on
//! other days. Every computation is done on local dates; the boundaries of a local day are
//! converted to instants with the time zone database. The clock measures real elapsed time, so
//! a working day normally contributes 24 hours, but a working day on which the clocks change
//! contributes its real length (23 or 25 hours). This keeps the clock monotonic and exactly
//! invertible ([`WorkingCalendar::working_time_between`] undoes
//! [`WorkingCalendar::add_working_time`]); most zones change their clocks on weekends or at
//! night anyway.
//!
//! - A local midnight that does not exist (clocks jump forward over it) starts its day at the
//!   first instant after the gap; a local midnight that occurs twice starts its day at the first
//!   occurrence. A local day that does not exist at all (Samoa, 2011-12-30) has zero length.
//!   Nothing here panics on such days.
//!
//! # Deadlines
//!
//! - **Effective start.** A submission counts from the submission instant if that instant falls
//!   on a working day before the cut-off (local time); otherwise it counts from 00:00 local of
//!   the next working day. A submission exactly at the cut-off counts from the next working day.
//!   Without a cut-off every instant of a working day counts from itself.
//! - **Deadline** = effective start + N × 24 hours of working time (three working days =
//!   72 working hours). Examples with a Saturday–Sunday weekend and a 17:30 cut-off: submitted
//!   Monday 10:00 → due Thursday 10:00; Friday 10:00 → Wednesday 10:00; Friday 18:00 → counts
//!   from Monday 00:00 → due Thursday 00:00; Saturday (any time) → Thursday 00:00, the end of
//!   Wednesday.
//! - A deadline is the earliest instant at which the working clock reaches the amount, so a
//!   deadline that completes at the end of a working day is reported as 00:00 of the following
//!   day even if that day is not a working day ("due at the end of Wednesday" = Thursday 00:00).
//!
//! # Pausing (changes requested)
//!
//! The clock of a task stops while the task waits on the applicant. Recipe for the service:
//!
//! 1. At submission: `start = effective_start(submitted)`, `deadline = deadline(submitted, 3)`
//!    (which equals `add_working_time(start, 72h)`).
//! 2. When changes are requested at `paused`: `used = working_time_between(start, paused)`,
//!    `remaining = 72h − used` (keep `remaining`). `working_time_between` returns zero when
//!    `paused` is before `start` (changes requested on a weekend for a Friday-evening
//!    submission use no time).
//! 3. When the applicant resubmits at `resumed`:
//!    `deadline = resume_deadline(resumed, remaining)`, which is
//!    `add_working_time(effective_start(resumed), remaining)`. **The resubmission is treated like
//!    a submission for the cut-off rule**: a resubmission after the cut-off or on a non-working
//!    day counts from the next working day, so that reviewers are never charged for the evening
//!    or weekend after a late resubmission, and so that resuming with the full 72 hours gives
//!    exactly `deadline(resumed, 3)`. For a later pause, `start` becomes
//!    `effective_start(resumed)` and `used` is again measured from it.
//! 4. A `remaining` of zero or less (the task was already overdue when it was paused) makes the
//!    new deadline the effective start of the resubmission: due at once.
//!
//! # Bounds
//!
//! Every scan is bounded: a computation looks at most [`MAX_SCAN_DAYS`] (about ten years) of
//! days. Amounts that would need more saturate: [`WorkingCalendar::add_working_time`] returns the
//! end of the scanned window, [`WorkingCalendar::working_time_between`] counts only the working
//! time within the window, and [`WorkingCalendar::effective_start`] returns the start of the day
//! after the window. Load-time validation (no all-week weekend, no non-working stretch longer
//! than [`MAX_NON_WORKING_RUN`] days) ensures these limits are never reached for deadlines of a
//! few working days. Instants beyond ±200,000 years are returned unchanged (zero working time).

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};

use chrono::{
    DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, TimeZone,
    Timelike, Utc, Weekday,
};
use chrono_tz::Tz;
use serde::Deserialize;

/// The most days any single computation scans (about ten years).
pub const MAX_SCAN_DAYS: u32 = 3660;

/// The longest stretch of consecutive non-working days a calendar may contain.
pub const MAX_NON_WORKING_RUN: u32 = 366;

/// Instants further than this many years from year 0 are not computed on (see "Bounds").
const MAX_ABS_YEAR: i32 = 200_000;

/// The shipped calendar of China (see [`WorkingCalendar::china`]).
const CN_YAML: &str = include_str!("../calendars/cn.yaml");

/// Why a calendar file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum CalendarError {
    /// The file could not be read.
    #[error("cannot read calendar file {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Not YAML, or not of the expected shape (missing `timezone`, unknown key, wrong type).
    #[error("invalid calendar YAML: {0}")]
    Yaml(#[from] serde_yaml::Error),
    /// `timezone` is not a name of the IANA time zone database.
    #[error("unknown time zone {0:?} (expected an IANA name such as \"Asia/Shanghai\")")]
    UnknownTimeZone(String),
    /// A listed date is not a real date written as `YYYY-MM-DD`.
    #[error("{field}: {value:?} is not a date written as YYYY-MM-DD")]
    BadDate { field: &'static str, value: String },
    /// A `weekend` entry is not a day of the week.
    #[error("weekend: {0:?} is not a day of the week")]
    BadWeekday(String),
    /// A date is listed both in `holidays` and in `extra_working_days`.
    #[error("{0} is listed both as a holiday and as an extra working day")]
    HolidayAndWorkingDay(NaiveDate),
    /// `cutoff` is not a local time of day from 00:00 to 23:59:59.
    #[error("cutoff {0:?} is not a local time of day from \"00:00\" to \"23:59\" (HH:MM)")]
    CutoffOutOfRange(String),
    /// With explicit `years`, a listed date falls in a year that is not listed.
    #[error("{field}: {date} is outside the covered years {years:?}")]
    DateOutsideYears {
        field: &'static str,
        date: NaiveDate,
        years: Vec<i32>,
    },
    /// Every day of the week is a weekend day: no date outside the covered years would work.
    #[error("weekend lists all seven days: there would be no working days")]
    AllDaysWeekend,
    /// The holidays and weekends leave a stretch of too many consecutive non-working days.
    #[error(
        "no working day in the {days} days from {from} (at most {MAX_NON_WORKING_RUN} consecutive non-working days are allowed)"
    )]
    NoWorkingDayWithin { from: NaiveDate, days: u32 },
}

/// A working-day calendar: time zone, weekend, cut-off, holidays and make-up working days.
/// See the module documentation for the rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkingCalendar {
    tz: Tz,
    /// Indexed by `Weekday::num_days_from_monday`.
    weekend: [bool; 7],
    cutoff: Option<NaiveTime>,
    holidays: BTreeSet<NaiveDate>,
    extra_working_days: BTreeSet<NaiveDate>,
    years: BTreeSet<i32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCalendar {
    timezone: String,
    #[serde(default)]
    weekend: Option<Vec<String>>,
    #[serde(default)]
    cutoff: Option<serde_yaml::Value>,
    #[serde(default)]
    years: Option<Vec<i32>>,
    #[serde(default)]
    holidays: Option<Vec<serde_yaml::Value>>,
    #[serde(default)]
    extra_working_days: Option<Vec<serde_yaml::Value>>,
}

impl WorkingCalendar {
    /// Parses and validates a calendar file's text.
    pub fn from_yaml(text: &str) -> Result<Self, CalendarError> {
        let raw: RawCalendar = serde_yaml::from_str(text)?;
        let tz: Tz = raw
            .timezone
            .parse()
            .map_err(|_| CalendarError::UnknownTimeZone(raw.timezone.clone()))?;

        let mut weekend = [false; 7];
        match raw.weekend {
            None => {
                weekend[Weekday::Sat.num_days_from_monday() as usize] = true;
                weekend[Weekday::Sun.num_days_from_monday() as usize] = true;
            }
            Some(days) => {
                for day in days {
                    let weekday: Weekday = day
                        .trim()
                        .parse()
                        .map_err(|_| CalendarError::BadWeekday(day.clone()))?;
                    weekend[weekday.num_days_from_monday() as usize] = true;
                }
            }
        }
        if weekend.iter().all(|&w| w) {
            return Err(CalendarError::AllDaysWeekend);
        }

        let cutoff = match raw.cutoff {
            None | Some(serde_yaml::Value::Null) => None,
            Some(value) => Some(parse_cutoff(&value)?),
        };

        let holidays = parse_dates("holidays", raw.holidays.unwrap_or_default())?;
        let extra_working_days = parse_dates(
            "extra_working_days",
            raw.extra_working_days.unwrap_or_default(),
        )?;
        if let Some(&both) = holidays.intersection(&extra_working_days).next() {
            return Err(CalendarError::HolidayAndWorkingDay(both));
        }

        let years: BTreeSet<i32> = match raw.years {
            Some(years) => {
                let years: BTreeSet<i32> = years.into_iter().collect();
                for (field, dates) in [
                    ("holidays", &holidays),
                    ("extra_working_days", &extra_working_days),
                ] {
                    if let Some(&date) = dates.iter().find(|d| !years.contains(&d.year())) {
                        return Err(CalendarError::DateOutsideYears {
                            field,
                            date,
                            years: years.iter().copied().collect(),
                        });
                    }
                }
                years
            }
            None => holidays
                .iter()
                .chain(&extra_working_days)
                .map(Datelike::year)
                .collect(),
        };

        let calendar = Self {
            tz,
            weekend,
            cutoff,
            holidays,
            extra_working_days,
            years,
        };
        calendar.check_non_working_runs()?;
        Ok(calendar)
    }

    /// Reads and parses a calendar file.
    pub fn from_file(path: &Path) -> Result<Self, CalendarError> {
        let text = std::fs::read_to_string(path).map_err(|source| CalendarError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_yaml(&text)
    }

    /// The marketplace home country's official calendar shipped with the service: the People's
    /// Republic of China, `calendars/cn.yaml` (Asia/Shanghai, Saturday–Sunday weekend, 17:30
    /// cut-off, the State Council holiday arrangement). It covers 2026 only: the 2027
    /// arrangement had not been published when the file was written.
    pub fn china() -> Self {
        Self::from_yaml(CN_YAML).expect("the shipped calendars/cn.yaml is valid (tested)")
    }

    /// The calendar's time zone.
    pub fn timezone(&self) -> Tz {
        self.tz
    }

    /// The cut-off time of day, if any.
    pub fn cutoff(&self) -> Option<NaiveTime> {
        self.cutoff
    }

    /// The weekend days, Monday first.
    pub fn weekend(&self) -> Vec<Weekday> {
        WEEK.into_iter()
            .filter(|d| self.weekend[d.num_days_from_monday() as usize])
            .collect()
    }

    /// The years whose holidays the file lists, ascending.
    pub fn covered_years(&self) -> Vec<i32> {
        self.years.iter().copied().collect()
    }

    /// Whether the file covers `year` (lists its holidays and make-up working days). Dates of
    /// other years follow the weekend rule only.
    pub fn covers(&self, year: i32) -> bool {
        self.years.contains(&year)
    }

    /// The years (of local dates, ascending) from `from` to `to` that the file does not cover.
    /// The service logs a warning when this is not empty for `(submitted, deadline)`: the
    /// deadline was computed without that year's holidays. At most 100 years are reported.
    pub fn uncovered_years_between(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<i32> {
        if to < from || !sane(from) || !sane(to) {
            return Vec::new();
        }
        let first = self.day_of(from).year();
        let last = self.day_of(to).year().min(first.saturating_add(99));
        (first..=last).filter(|y| !self.covers(*y)).collect()
    }

    /// Whether `date` is a working day: an extra working day, or neither a holiday nor a
    /// weekend day.
    pub fn is_working_day(&self, date: NaiveDate) -> bool {
        if self.extra_working_days.contains(&date) {
            return true;
        }
        if self.holidays.contains(&date) {
            return false;
        }
        !self.weekend[date.weekday().num_days_from_monday() as usize]
    }

    /// When the clock of a submission made at `at` starts: `at` itself if it falls on a working
    /// day before the cut-off, else 00:00 local of the next working day.
    pub fn effective_start(&self, at: DateTime<Utc>) -> DateTime<Utc> {
        if !sane(at) {
            return at;
        }
        let day = self.day_of(at);
        if self.is_working_day(day) && self.before_cutoff(at, day) {
            return at;
        }
        let mut date = day;
        for _ in 0..MAX_SCAN_DAYS {
            let Some(next) = date.succ_opt() else {
                break;
            };
            date = next;
            if self.is_working_day(date) {
                break;
            }
        }
        self.day_start(date)
    }

    /// The instant at which `amount` of working time has run from `from`: the earliest instant
    /// `t >= from` with `working_time_between(from, t) == amount`. A zero or negative amount
    /// returns `from`. From a non-working day the clock first waits for the next working day.
    pub fn add_working_time(&self, from: DateTime<Utc>, amount: Duration) -> DateTime<Utc> {
        if amount <= Duration::zero() || !sane(from) {
            return from;
        }
        let mut day = self.day_of(from);
        let mut at = from;
        let mut remaining = amount;
        for _ in 0..MAX_SCAN_DAYS {
            let Some(next) = day.succ_opt() else {
                break;
            };
            let end = self.day_start(next).max(at);
            if self.is_working_day(day) {
                let available = end - at;
                if remaining <= available {
                    return at + remaining;
                }
                remaining -= available;
            }
            at = end;
            day = next;
        }
        at
    }

    /// The working time that runs from `from` to `to`; zero when `to <= from`.
    pub fn working_time_between(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Duration {
        if to <= from || !sane(from) || !sane(to) {
            return Duration::zero();
        }
        let mut day = self.day_of(from);
        let mut at = from;
        let mut total = Duration::zero();
        for _ in 0..MAX_SCAN_DAYS {
            let Some(next) = day.succ_opt() else {
                break;
            };
            let end = self.day_start(next).max(at);
            if self.is_working_day(day) {
                total += end.min(to) - at;
            }
            if to <= end {
                break;
            }
            at = end;
            day = next;
        }
        total
    }

    /// The deadline of a subject submitted at `submitted`: `working_days` × 24 hours of working
    /// time after [`effective_start`](Self::effective_start)`(submitted)`. Never before
    /// `submitted`.
    pub fn deadline(&self, submitted: DateTime<Utc>, working_days: u32) -> DateTime<Utc> {
        let amount = Duration::hours(24 * i64::from(working_days));
        self.add_working_time(self.effective_start(submitted), amount)
    }

    /// The new deadline of a task resumed at `resumed` (the applicant resubmitted) with
    /// `remaining` working time left: `add_working_time(effective_start(resumed), remaining)`.
    /// The resubmission follows the cut-off rule like a submission.
    pub fn resume_deadline(&self, resumed: DateTime<Utc>, remaining: Duration) -> DateTime<Utc> {
        self.add_working_time(self.effective_start(resumed), remaining)
    }

    /// The first instant of local day `date`.
    fn day_start(&self, date: NaiveDate) -> DateTime<Utc> {
        self.first_instant_at(date.and_time(NaiveTime::MIN))
    }

    /// The first instant at which local wall time reaches `local`: the instant itself when it
    /// exists once, its first occurrence when the clocks fall back over it, and the end of the
    /// gap when the clocks jump forward over it.
    fn first_instant_at(&self, local: NaiveDateTime) -> DateTime<Utc> {
        match self.tz.from_local_datetime(&local) {
            LocalResult::Single(at) => at.with_timezone(&Utc),
            LocalResult::Ambiguous(a, b) => a.min(b).with_timezone(&Utc),
            LocalResult::None => self.end_of_gap(local),
        }
    }

    /// Binary search (in whole seconds; zone transitions are on whole seconds) for the first
    /// instant whose local wall time is at or after `local`. UTC offsets stay within ±26 hours.
    fn end_of_gap(&self, local: NaiveDateTime) -> DateTime<Utc> {
        let guess = local.and_utc().timestamp();
        let reached = |secs: i64| {
            DateTime::from_timestamp(secs, 0)
                .is_some_and(|at| at.with_timezone(&self.tz).naive_local() >= local)
        };
        let mut lo = guess - 26 * 3600;
        let mut hi = guess + 26 * 3600;
        if reached(lo) || !reached(hi) {
            // Not a gap after all (cannot happen with the tz database); fall back to the guess.
            return local.and_utc();
        }
        // Invariant: !reached(lo) && reached(hi). At most ~18 iterations.
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if reached(mid) {
                hi = mid;
            } else {
                lo = mid;
            }
        }
        DateTime::from_timestamp(hi, 0).unwrap_or_else(|| local.and_utc())
    }

    /// The local day an instant belongs to: the day `d` with `day_start(d) <= at <
    /// day_start(d + 1)`. This is the local date of `at`, except while the clocks fall back
    /// across midnight, where the repeated stretch belongs to the later day.
    fn day_of(&self, at: DateTime<Utc>) -> NaiveDate {
        let mut day = at.with_timezone(&self.tz).date_naive();
        for _ in 0..3 {
            if at < self.day_start(day) {
                match day.pred_opt() {
                    Some(prev) => day = prev,
                    None => break,
                }
            } else if let Some(next) = day.succ_opt()
                && at >= self.day_start(next)
            {
                day = next;
            } else {
                break;
            }
        }
        day
    }

    /// Whether `at` (on local day `day`) is before that day's cut-off.
    fn before_cutoff(&self, at: DateTime<Utc>, day: NaiveDate) -> bool {
        match self.cutoff {
            None => true,
            Some(cutoff) => at < self.first_instant_at(day.and_time(cutoff)),
        }
    }

    /// Rejects calendars with a stretch of more than [`MAX_NON_WORKING_RUN`] consecutive
    /// non-working days. With at least one working weekday, such a stretch must be made of
    /// holidays joined by weekends, so only the stretches around holidays are walked.
    fn check_non_working_runs(&self) -> Result<(), CalendarError> {
        let mut checked_until: Option<NaiveDate> = None;
        for &holiday in &self.holidays {
            if checked_until.is_some_and(|until| holiday <= until) {
                continue;
            }
            let mut first = holiday;
            for _ in 0..7 {
                match first.pred_opt() {
                    Some(prev) if !self.is_working_day(prev) => first = prev,
                    _ => break,
                }
            }
            let mut last = first;
            let mut days: u32 = 1;
            while let Some(next) = last.succ_opt() {
                if self.is_working_day(next) {
                    break;
                }
                last = next;
                days += 1;
                if days > MAX_NON_WORKING_RUN {
                    return Err(CalendarError::NoWorkingDayWithin { from: first, days });
                }
            }
            checked_until = Some(last);
        }
        Ok(())
    }
}

const WEEK: [Weekday; 7] = [
    Weekday::Mon,
    Weekday::Tue,
    Weekday::Wed,
    Weekday::Thu,
    Weekday::Fri,
    Weekday::Sat,
    Weekday::Sun,
];

/// A one-line summary for the service's start-up log, e.g. `time zone Asia/Shanghai, weekend
/// Sat Sun, cut-off 17:30, covers 2026 (33 holidays, 6 extra working days)`.
impl fmt::Display for WorkingCalendar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "time zone {}, weekend", self.tz.name())?;
        let weekend = self.weekend();
        if weekend.is_empty() {
            write!(f, " none")?;
        }
        for day in weekend {
            write!(f, " {day}")?;
        }
        match self.cutoff {
            Some(cutoff) if cutoff.second() == 0 => {
                write!(f, ", cut-off {}", cutoff.format("%H:%M"))?;
            }
            Some(cutoff) => write!(f, ", cut-off {}", cutoff.format("%H:%M:%S"))?,
            None => write!(f, ", no cut-off")?,
        }
        if self.years.is_empty() {
            write!(f, ", covers no year (weekend rule only)")?;
        } else {
            let years: Vec<String> = self.years.iter().map(i32::to_string).collect();
            write!(f, ", covers {}", years.join(" "))?;
        }
        write!(
            f,
            " ({} holidays, {} extra working days)",
            self.holidays.len(),
            self.extra_working_days.len()
        )
    }
}

fn sane(at: DateTime<Utc>) -> bool {
    (-MAX_ABS_YEAR..=MAX_ABS_YEAR).contains(&at.year())
}

/// The text of a YAML scalar, for parsing and error messages.
fn scalar_text(value: &serde_yaml::Value) -> String {
    match value {
        serde_yaml::Value::String(s) => s.clone(),
        serde_yaml::Value::Number(n) => n.to_string(),
        serde_yaml::Value::Bool(b) => b.to_string(),
        serde_yaml::Value::Null => "null".to_owned(),
        other => serde_yaml::to_string(other)
            .map(|s| s.trim_end().to_owned())
            .unwrap_or_else(|_| format!("{other:?}")),
    }
}

fn parse_dates(
    field: &'static str,
    values: Vec<serde_yaml::Value>,
) -> Result<BTreeSet<NaiveDate>, CalendarError> {
    values
        .iter()
        .map(|value| {
            let text = scalar_text(value);
            parse_date(&text).ok_or(CalendarError::BadDate { field, value: text })
        })
        .collect()
}

/// Strictly `YYYY-MM-DD` (four-digit year, two-digit month and day), and a real date.
fn parse_date(text: &str) -> Option<NaiveDate> {
    let bytes = text.as_bytes();
    let shape_ok = bytes.len() == 10
        && bytes[4] == b'-'
        && bytes[7] == b'-'
        && bytes
            .iter()
            .enumerate()
            .all(|(i, b)| i == 4 || i == 7 || b.is_ascii_digit());
    if !shape_ok {
        return None;
    }
    let year = text[0..4].parse().ok()?;
    let month = text[5..7].parse().ok()?;
    let day = text[8..10].parse().ok()?;
    NaiveDate::from_ymd_opt(year, month, day)
}

/// `H:MM`, `HH:MM` or `HH:MM:SS`, from 00:00 to 23:59:59.
fn parse_cutoff(value: &serde_yaml::Value) -> Result<NaiveTime, CalendarError> {
    let text = scalar_text(value);
    let out_of_range = || CalendarError::CutoffOutOfRange(text.clone());
    if !matches!(value, serde_yaml::Value::String(_)) {
        return Err(out_of_range());
    }
    let parts: Vec<&str> = text.trim().split(':').collect();
    let well_formed = matches!(parts.len(), 2 | 3)
        && parts.iter().enumerate().all(|(i, p)| {
            let len_ok = if i == 0 {
                matches!(p.len(), 1 | 2)
            } else {
                p.len() == 2
            };
            len_ok && p.bytes().all(|b| b.is_ascii_digit())
        });
    if !well_formed {
        return Err(out_of_range());
    }
    let number = |i: usize| parts.get(i).map_or(Ok(0), |p| p.parse::<u32>());
    let (Ok(hour), Ok(minute), Ok(second)) = (number(0), number(1), number(2)) else {
        return Err(out_of_range());
    };
    NaiveTime::from_hms_opt(hour, minute, second).ok_or_else(out_of_range)
}

#[cfg(test)]
#[path = "calendar_tests.rs"]
mod tests;
