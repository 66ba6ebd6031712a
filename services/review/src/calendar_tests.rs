//! The tests of the working-day calendar (`calendar.rs`).

use super::*;
use proptest::prelude::*;

/// An instant written in UTC.
fn utc(text: &str) -> DateTime<Utc> {
    text.parse().unwrap()
}

/// The instant of a local wall time (must exist once) in the calendar's zone.
fn local(cal: &WorkingCalendar, text: &str) -> DateTime<Utc> {
    let naive = NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S").unwrap();
    cal.timezone()
        .from_local_datetime(&naive)
        .single()
        .unwrap()
        .with_timezone(&Utc)
}

fn date(text: &str) -> NaiveDate {
    parse_date(text).unwrap()
}

fn cal(yaml: &str) -> WorkingCalendar {
    WorkingCalendar::from_yaml(yaml).unwrap()
}

/// Asia/Shanghai (UTC+8, no DST), Saturday–Sunday weekend, 17:30 cut-off, no holidays.
fn plain() -> WorkingCalendar {
    cal("timezone: Asia/Shanghai\ncutoff: \"17:30\"\n")
}

const H: fn(i64) -> Duration = Duration::hours;

// 2026-03-02 is a Monday.

#[test]
fn deadline_within_a_working_week() {
    let c = plain();
    let submitted = local(&c, "2026-03-02 10:00:00");
    assert_eq!(submitted, utc("2026-03-02T02:00:00Z"));
    assert_eq!(c.effective_start(submitted), submitted);
    assert_eq!(c.deadline(submitted, 3), local(&c, "2026-03-05 10:00:00"));
    assert_eq!(c.deadline(submitted, 0), submitted);
    assert_eq!(c.deadline(submitted, 1), local(&c, "2026-03-03 10:00:00"));
}

#[test]
fn deadline_across_a_weekend() {
    let c = plain();
    // Friday 10:00 -> Wednesday 10:00.
    let friday = local(&c, "2026-03-06 10:00:00");
    assert_eq!(c.deadline(friday, 3), local(&c, "2026-03-11 10:00:00"));
    assert_eq!(c.deadline(friday, 3), utc("2026-03-11T02:00:00Z"));
    // Saturday (any time) -> Monday 00:00 start -> Thursday 00:00, the end of Wednesday.
    let saturday = local(&c, "2026-03-07 09:15:00");
    assert_eq!(
        c.effective_start(saturday),
        local(&c, "2026-03-09 00:00:00")
    );
    assert_eq!(c.deadline(saturday, 3), local(&c, "2026-03-12 00:00:00"));
    // The weekend contributes no working time.
    assert_eq!(
        c.working_time_between(friday, local(&c, "2026-03-09 10:00:00")),
        H(14 + 10)
    );
}

#[test]
fn deadline_across_a_holiday() {
    let c = cal("timezone: Asia/Shanghai\ncutoff: \"17:30\"\nholidays: [2026-03-04]\n");
    assert!(!c.is_working_day(date("2026-03-04")));
    assert!(c.covers(2026));
    assert!(!c.covers(2027));
    // Monday 10:00, Wednesday off -> Friday 10:00.
    let monday = local(&c, "2026-03-02 10:00:00");
    assert_eq!(c.deadline(monday, 3), local(&c, "2026-03-06 10:00:00"));
    // Submitted on the holiday: counts from Thursday 00:00 -> Monday 00:00 (end of Friday,
    // then the weekend is skipped: Thursday, Friday, Monday).
    let holiday = local(&c, "2026-03-04 11:00:00");
    assert_eq!(c.effective_start(holiday), local(&c, "2026-03-05 00:00:00"));
    assert_eq!(c.deadline(holiday, 3), local(&c, "2026-03-10 00:00:00"));
}

#[test]
fn deadline_across_a_make_up_working_saturday() {
    let c = cal("timezone: Asia/Shanghai\ncutoff: \"17:30\"\nextra_working_days: [2026-03-07]\n");
    assert!(c.is_working_day(date("2026-03-07")));
    assert!(!c.is_working_day(date("2026-03-08")));
    // Friday 10:00: Fri 14 h + Sat 24 h + Mon 24 h + Tue 10 h -> Tuesday 10:00.
    let friday = local(&c, "2026-03-06 10:00:00");
    assert_eq!(c.deadline(friday, 3), local(&c, "2026-03-10 10:00:00"));
    // Submitted on the make-up Saturday before the cut-off: counts at once.
    let saturday = local(&c, "2026-03-07 10:00:00");
    assert_eq!(c.effective_start(saturday), saturday);
    assert_eq!(c.deadline(saturday, 3), local(&c, "2026-03-11 10:00:00"));
}

#[test]
fn date_line_time_zones_give_different_local_days() {
    // Friday 2026-03-06 12:00 UTC is Saturday 02:00 in Kiritimati (UTC+14) and Friday 01:00
    // in Pago Pago (UTC-11).
    let at = utc("2026-03-06T12:00:00Z");
    let kiritimati = cal("timezone: Pacific/Kiritimati\ncutoff: \"17:30\"\n");
    let pago_pago = cal("timezone: Pacific/Pago_Pago\ncutoff: \"17:30\"\n");

    // Kiritimati: Saturday -> Monday 2026-03-09 00:00 (+14) -> Thursday 00:00 (+14).
    assert_eq!(kiritimati.effective_start(at), utc("2026-03-08T10:00:00Z"));
    assert_eq!(kiritimati.deadline(at, 3), utc("2026-03-11T10:00:00Z"));
    // Pago Pago: Friday 01:00 counts at once: Fri 23 h + Mon 24 h + Tue 24 h + Wed 1 h ->
    // Wednesday 2026-03-11 01:00 (-11).
    assert_eq!(pago_pago.effective_start(at), at);
    assert_eq!(pago_pago.deadline(at, 3), utc("2026-03-11T12:00:00Z"));
}

#[test]
fn cut_off_just_before_and_at_and_after() {
    let c = plain();
    let before = local(&c, "2026-03-02 17:29:59");
    assert_eq!(c.effective_start(before), before);
    assert_eq!(c.deadline(before, 3), local(&c, "2026-03-05 17:29:59"));

    let at = local(&c, "2026-03-02 17:30:00");
    assert_eq!(c.effective_start(at), local(&c, "2026-03-03 00:00:00"));
    assert_eq!(c.deadline(at, 3), local(&c, "2026-03-06 00:00:00"));

    // Friday 18:00 -> Monday 00:00 -> Thursday 00:00.
    let friday_evening = local(&c, "2026-03-06 18:00:00");
    assert_eq!(
        c.effective_start(friday_evening),
        local(&c, "2026-03-09 00:00:00")
    );
    assert_eq!(
        c.deadline(friday_evening, 3),
        local(&c, "2026-03-12 00:00:00")
    );

    // Without a cut-off the evening counts.
    let no_cutoff = cal("timezone: Asia/Shanghai\n");
    assert_eq!(no_cutoff.cutoff(), None);
    assert_eq!(no_cutoff.effective_start(at), at);
    assert_eq!(no_cutoff.deadline(at, 3), local(&c, "2026-03-05 17:30:00"));
}

#[test]
fn pause_and_resume() {
    let c = plain();
    let submitted = local(&c, "2026-03-02 10:00:00"); // Monday
    let start = c.effective_start(submitted);
    assert_eq!(c.deadline(submitted, 3), local(&c, "2026-03-05 10:00:00"));

    // Changes requested Tuesday 16:00: 30 working hours used, 42 left.
    let paused = local(&c, "2026-03-03 16:00:00");
    let used = c.working_time_between(start, paused);
    assert_eq!(used, H(30));
    let remaining = H(72) - used;

    // Resubmitted Friday 11:00 (before the cut-off): Fri 13 h + Mon 24 h + Tue 5 h.
    let resumed = local(&c, "2026-03-06 11:00:00");
    let deadline = c.resume_deadline(resumed, remaining);
    assert_eq!(deadline, local(&c, "2026-03-10 05:00:00"));
    assert_eq!(deadline, c.add_working_time(resumed, remaining));
    assert_eq!(c.working_time_between(resumed, deadline), remaining);

    // Resubmitted Friday 18:00 (after the cut-off): counts from Monday 00:00.
    let late = local(&c, "2026-03-06 18:00:00");
    assert_eq!(
        c.resume_deadline(late, remaining),
        local(&c, "2026-03-10 18:00:00")
    );
    // Without the cut-off rule the evening after a late resubmission would be charged:
    // Fri 6 h + Mon 24 h + Tue 12 h -> Tuesday 12:00 instead of 18:00.
    assert_eq!(
        c.add_working_time(late, remaining),
        local(&c, "2026-03-10 12:00:00")
    );
    let wednesday_late = local(&c, "2026-03-04 20:00:00");
    assert_eq!(
        c.add_working_time(wednesday_late, remaining),
        local(&c, "2026-03-06 14:00:00")
    );
    assert_eq!(
        c.resume_deadline(wednesday_late, remaining),
        local(&c, "2026-03-06 18:00:00")
    );

    // Resuming with the full 72 hours is the same as a new submission.
    assert_eq!(c.resume_deadline(late, H(72)), c.deadline(late, 3));

    // Overdue when paused: due at the effective start of the resubmission.
    assert_eq!(c.resume_deadline(resumed, H(-5)), resumed);
    assert_eq!(
        c.resume_deadline(late, Duration::zero()),
        local(&c, "2026-03-09 00:00:00")
    );

    // Friday 18:00 submission, changes requested on Saturday: nothing used.
    let friday = local(&c, "2026-03-06 18:00:00");
    let saturday = local(&c, "2026-03-07 12:00:00");
    assert_eq!(
        c.working_time_between(c.effective_start(friday), saturday),
        Duration::zero()
    );
}

#[test]
fn dst_switch_on_a_weekend_is_exact() {
    // New York: clocks go from 02:00 EST to 03:00 EDT on Sunday 2026-03-08.
    let c = cal("timezone: America/New_York\ncutoff: \"17:30\"\n");
    let friday = local(&c, "2026-03-06 10:00:00");
    assert_eq!(friday, utc("2026-03-06T15:00:00Z"));
    // Fri 14 h + Mon 24 h + Tue 24 h + Wed 10 h -> Wednesday 10:00 EDT (14:00 UTC, not the
    // 15:00 UTC that UTC arithmetic would give).
    assert_eq!(c.deadline(friday, 3), utc("2026-03-11T14:00:00Z"));
    assert_eq!(c.deadline(friday, 3), local(&c, "2026-03-11 10:00:00"));
    // Saturday -> Monday 00:00 EDT -> Thursday 00:00 EDT.
    let saturday = local(&c, "2026-03-07 12:00:00");
    assert_eq!(c.effective_start(saturday), utc("2026-03-09T04:00:00Z"));
    assert_eq!(c.deadline(saturday, 3), utc("2026-03-12T04:00:00Z"));
    // Fall back on Sunday 2026-11-01: Friday 10:00 EDT -> Wednesday 10:00 EST.
    let friday = local(&c, "2026-10-30 10:00:00");
    assert_eq!(c.deadline(friday, 3), utc("2026-11-04T15:00:00Z"));
}

#[test]
fn dst_switch_on_a_working_day_counts_real_hours() {
    // Every day works: the 23-hour and 25-hour days count as 23 and 25 hours.
    let c = cal("timezone: America/New_York\nweekend: []\n");
    assert!(c.weekend().is_empty());
    let spring = local(&c, "2026-03-08 00:00:00");
    assert_eq!(spring, utc("2026-03-08T05:00:00Z"));
    let next = local(&c, "2026-03-09 00:00:00");
    assert_eq!(c.working_time_between(spring, next), H(23));
    // Saturday 12:00 EST + 72 h -> Tuesday 13:00 EDT.
    let saturday = local(&c, "2026-03-07 12:00:00");
    assert_eq!(c.deadline(saturday, 3), utc("2026-03-10T17:00:00Z"));
    // 02:30 on 2026-03-08 does not exist; instants around it are fine.
    assert_eq!(
        c.add_working_time(utc("2026-03-08T06:59:00Z"), Duration::minutes(2)),
        utc("2026-03-08T07:01:00Z")
    );
    let autumn = local(&c, "2026-11-01 00:00:00");
    let after = local(&c, "2026-11-02 00:00:00");
    assert_eq!(c.working_time_between(autumn, after), H(25));
    // With the default weekend that Sunday is not working at all.
    let weekend = cal("timezone: America/New_York\n");
    assert_eq!(
        weekend.working_time_between(autumn, after),
        Duration::zero()
    );
}

#[test]
fn midnight_that_does_not_exist_or_occurs_twice() {
    // Havana: clocks jump from 00:00 to 01:00 on 2026-03-08 (midnight does not exist) and
    // fall back from 01:00 to 00:00 on 2026-11-01 (midnight occurs twice).
    let c = cal("timezone: America/Havana\nweekend: []\ncutoff: \"00:30\"\n\
         holidays: [2026-03-07, 2026-10-31]\n");
    // The day after the holiday starts at the end of the gap: 01:00 CDT = 05:00 UTC.
    let holiday = utc("2026-03-07T18:00:00Z");
    assert_eq!(c.effective_start(holiday), utc("2026-03-08T05:00:00Z"));
    // That day is 23 hours long.
    assert_eq!(
        c.add_working_time(utc("2026-03-08T05:00:00Z"), H(23)),
        utc("2026-03-09T04:00:00Z")
    );
    // The cut-off 00:30 falls in the gap: the first instant of the day is already past it.
    assert_eq!(
        c.effective_start(utc("2026-03-08T05:00:00Z")),
        utc("2026-03-09T04:00:00Z")
    );
    // Midnight of 2026-11-01 occurs at 04:00 UTC (CDT) and 05:00 UTC (CST): the day starts
    // at the first one and lasts 25 hours.
    assert_eq!(
        c.effective_start(utc("2026-10-31T12:00:00Z")),
        utc("2026-11-01T04:00:00Z")
    );
    assert_eq!(
        c.working_time_between(utc("2026-11-01T04:00:00Z"), utc("2026-11-02T05:00:00Z")),
        H(25)
    );
    // The cut-off 00:30 is reached at its first occurrence (04:30 UTC); the repeated
    // 00:15 (05:15 UTC) is after the cut-off.
    assert_eq!(
        c.effective_start(utc("2026-11-01T04:15:00Z")),
        utc("2026-11-01T04:15:00Z")
    );
    assert_eq!(
        c.effective_start(utc("2026-11-01T05:15:00Z")),
        utc("2026-11-02T05:00:00Z")
    );
}

#[test]
fn a_day_that_does_not_exist_has_no_length() {
    // Samoa skipped 2011-12-30 (from UTC-10 to UTC+14).
    let c = cal("timezone: Pacific/Apia\nweekend: []\n");
    let before = utc("2011-12-29T22:00:00Z"); // 2011-12-29 12:00 local
    let after = utc("2011-12-30T22:00:00Z"); // 2011-12-31 12:00 local
    assert_eq!(c.working_time_between(before, after), H(24));
    assert_eq!(c.add_working_time(before, H(24)), after);
    assert_eq!(c.effective_start(before), before);
}

#[test]
fn china_calendar() {
    let c = WorkingCalendar::china();
    assert_eq!(c.timezone(), chrono_tz::Asia::Shanghai);
    assert_eq!(c.cutoff(), NaiveTime::from_hms_opt(17, 30, 0));
    assert_eq!(c.weekend(), vec![Weekday::Sat, Weekday::Sun]);
    assert_eq!(c.covered_years(), vec![2026]);
    assert!(c.covers(2026) && !c.covers(2025) && !c.covers(2027));
    assert_eq!(c.holidays.len(), 3 + 9 + 3 + 5 + 3 + 3 + 7);
    // Every make-up working day is a weekend day; every listed date is in 2026.
    for day in &c.extra_working_days {
        assert!(
            matches!(day.weekday(), Weekday::Sat | Weekday::Sun),
            "{day}"
        );
    }
    assert!(c.is_working_day(date("2026-02-14")));
    assert!(!c.is_working_day(date("2026-02-17")));
    assert!(!c.is_working_day(date("2026-10-01")));
    assert!(c.is_working_day(date("2026-10-10")));
    // 2027 follows the weekend rule only.
    assert!(!c.is_working_day(date("2027-01-02")));
    assert!(c.is_working_day(date("2027-01-04")));
    assert_eq!(
        c.to_string(),
        "time zone Asia/Shanghai, weekend Sat Sun, cut-off 17:30, covers 2026 \
         (33 holidays, 6 extra working days)"
    );
}

#[test]
fn china_deadlines_across_spring_festival_and_national_day() {
    let c = WorkingCalendar::china();
    // Friday 2026-02-13 10:00: Fri 14 h + make-up Sat 14th 24 h + (15th–23rd off) +
    // Tue 24th 24 h + Wed 25th 10 h.
    let submitted = local(&c, "2026-02-13 10:00:00");
    assert_eq!(c.deadline(submitted, 3), utc("2026-02-25T02:00:00Z"));
    // Wednesday 2026-09-30 16:00: Wed 8 h + (1st–7th off) + Thu 8th + Fri 9th + make-up
    // Sat 10th 16 h.
    let submitted = local(&c, "2026-09-30 16:00:00");
    assert_eq!(c.deadline(submitted, 3), local(&c, "2026-10-10 16:00:00"));
    // A deadline reaching into 2027 is flagged.
    let late = local(&c, "2026-12-30 12:00:00");
    let deadline = c.deadline(late, 3);
    assert_eq!(deadline, local(&c, "2027-01-04 12:00:00"));
    assert_eq!(c.uncovered_years_between(late, deadline), vec![2027]);
    assert!(
        c.uncovered_years_between(submitted, c.deadline(submitted, 3))
            .is_empty()
    );
}

#[test]
fn coverage_from_listed_dates_or_explicit_years() {
    let implicit = cal("timezone: UTC\nholidays: [2026-05-01]\nextra_working_days: [2027-05-08]\n");
    assert_eq!(implicit.covered_years(), vec![2026, 2027]);
    let explicit = cal("timezone: UTC\nyears: [2026, 2027]\nholidays: [2026-05-01]\n");
    assert_eq!(explicit.covered_years(), vec![2026, 2027]);
    let none = cal("timezone: UTC\nweekend: [fri, SAT]\nholidays:\n");
    assert_eq!(none.covered_years(), Vec::<i32>::new());
    assert_eq!(none.weekend(), vec![Weekday::Fri, Weekday::Sat]);
    assert!(none.is_working_day(date("2026-03-08"))); // a Sunday
}

#[test]
fn file_loading() {
    let path = std::env::temp_dir().join(format!(
        "kg-review-calendar-test-{}.yaml",
        std::process::id()
    ));
    std::fs::write(&path, "timezone: Europe/Berlin\ncutoff: \"9:05\"\n").unwrap();
    let c = WorkingCalendar::from_file(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    assert_eq!(c.timezone(), chrono_tz::Europe::Berlin);
    assert_eq!(c.cutoff(), NaiveTime::from_hms_opt(9, 5, 0));
    let missing = WorkingCalendar::from_file(Path::new("/nonexistent/calendar.yaml"));
    assert!(
        matches!(missing, Err(CalendarError::Io { .. })),
        "{missing:?}"
    );
}

#[test]
fn invalid_files() {
    fn err(yaml: &str) -> CalendarError {
        WorkingCalendar::from_yaml(yaml).unwrap_err()
    }
    assert!(matches!(err("timezone: [unclosed"), CalendarError::Yaml(_)));
    assert!(matches!(err("weekend: [Sunday]\n"), CalendarError::Yaml(_)));
    assert!(matches!(
        err("timezone: UTC\nextra_workdays: [2026-01-04]\n"),
        CalendarError::Yaml(_)
    ));
    assert!(matches!(
        err("timezone: UTC\nholidays: 2026-01-01\n"),
        CalendarError::Yaml(_)
    ));
    assert!(matches!(
        err("timezone: Mars/Olympus_Mons\n"),
        CalendarError::UnknownTimeZone(tz) if tz == "Mars/Olympus_Mons"
    ));
    for bad in [
        "2026-02-30",
        "2026/01/01",
        "2026-1-1",
        "20260101",
        "yesterday",
        "2026-13-01",
    ] {
        let e = err(&format!("timezone: UTC\nholidays: [2026-01-01, {bad}]\n"));
        assert!(
            matches!(&e, CalendarError::BadDate { field: "holidays", value } if value == bad),
            "{bad}: {e:?}"
        );
    }
    assert!(matches!(
        err("timezone: UTC\nextra_working_days: [2026-1-04]\n"),
        CalendarError::BadDate {
            field: "extra_working_days",
            ..
        }
    ));
    assert!(matches!(
        err("timezone: UTC\nweekend: [Saturday, Caturday]\n"),
        CalendarError::BadWeekday(day) if day == "Caturday"
    ));
    assert!(matches!(
        err("timezone: UTC\nholidays: [2026-10-10]\nextra_working_days: [2026-10-10]\n"),
        CalendarError::HolidayAndWorkingDay(d) if d == date("2026-10-10")
    ));
    for bad in [
        "\"24:00\"",
        "\"17:60\"",
        "\"noon\"",
        "1730",
        "\"17\"",
        "\"17:30:60\"",
        "\"-1:00\"",
    ] {
        let e = err(&format!("timezone: UTC\ncutoff: {bad}\n"));
        assert!(
            matches!(e, CalendarError::CutoffOutOfRange(_)),
            "{bad}: {e:?}"
        );
    }
    assert!(matches!(
        err("timezone: UTC\nyears: [2026]\nholidays: [2027-01-01]\n"),
        CalendarError::DateOutsideYears {
            field: "holidays",
            ..
        }
    ));
    assert!(matches!(
        err("timezone: UTC\nweekend: [Mon, Tue, Wed, Thu, Fri, Sat, Sun]\n"),
        CalendarError::AllDaysWeekend
    ));
    let year_off: Vec<String> = (0..400)
        .map(|i| (date("2026-01-01") + Duration::days(i)).to_string())
        .collect();
    let e = err(&format!(
        "timezone: UTC\nholidays: [{}]\n",
        year_off.join(", ")
    ));
    assert!(
        matches!(e, CalendarError::NoWorkingDayWithin { from, .. } if from == date("2026-01-01")),
        "{e:?}"
    );
    // Error messages are readable.
    assert_eq!(
        err("timezone: UTC\ncutoff: \"25:00\"\n").to_string(),
        "cutoff \"25:00\" is not a local time of day from \"00:00\" to \"23:59\" (HH:MM)"
    );
}

#[test]
fn long_but_allowed_non_working_stretch() {
    // 300 consecutive holidays load, and deadlines skip them without hitting any bound.
    let days: Vec<String> = (0..300)
        .map(|i| (date("2026-01-01") + Duration::days(i)).to_string())
        .collect();
    let c = cal(&format!("timezone: UTC\nholidays: [{}]\n", days.join(", ")));
    let submitted = utc("2026-01-05T10:00:00Z");
    // 2026-10-28 (Wednesday) is the first working day.
    assert_eq!(c.effective_start(submitted), utc("2026-10-28T00:00:00Z"));
    // Wednesday, Thursday, Friday: due at the end of Friday.
    assert_eq!(c.deadline(submitted, 3), utc("2026-10-31T00:00:00Z"));
}

#[test]
fn extreme_instants_do_not_panic() {
    let c = plain();
    for at in [DateTime::<Utc>::MIN_UTC, DateTime::<Utc>::MAX_UTC] {
        assert_eq!(c.deadline(at, 3), at);
        assert_eq!(c.working_time_between(at, at), Duration::zero());
    }
    let far = utc("9999-12-31T23:00:00Z");
    assert!(c.deadline(far, 3) >= far);
    assert_eq!(
        c.working_time_between(DateTime::<Utc>::MIN_UTC, DateTime::<Utc>::MAX_UTC),
        Duration::zero()
    );
    assert!(c.deadline(utc("2026-03-02T00:00:00Z"), u32::MAX) > utc("2035-01-01T00:00:00Z"));
}

fn property_calendars() -> Vec<WorkingCalendar> {
    vec![
        WorkingCalendar::china(),
        plain(),
        cal("timezone: America/New_York\ncutoff: \"17:30\"\nholidays: [2026-07-03, 2026-11-26]\n"),
        cal("timezone: America/Havana\nweekend: [Sunday]\ncutoff: \"00:30\"\n"),
        cal("timezone: Europe/London\nweekend: []\nextra_working_days: []\n"),
        cal("timezone: Pacific/Kiritimati\nweekend: [Friday, Saturday]\ncutoff: \"09:00\"\n"),
        cal("timezone: Australia/Lord_Howe\nholidays: [2026-04-03, 2026-10-05]\n"),
    ]
}

/// Instants from 2025-01-01 to about 2028-02, to the nanosecond.
fn instant() -> impl Strategy<Value = DateTime<Utc>> {
    (0i64..100_000_000, 0u32..1_000_000_000)
        .prop_map(|(secs, nanos)| DateTime::from_timestamp(1_735_689_600 + secs, nanos).unwrap())
}

proptest! {
    #[test]
    fn add_then_measure_gives_the_amount(
        which in 0usize..7,
        from in instant(),
        amount_secs in 0i64..(40 * 86_400),
        amount_nanos in 0i64..1_000_000_000,
    ) {
        let c = &property_calendars()[which];
        let amount = Duration::seconds(amount_secs) + Duration::nanoseconds(amount_nanos);
        let to = c.add_working_time(from, amount);
        prop_assert!(to >= from);
        prop_assert_eq!(c.working_time_between(from, to), amount);
        // From a working-day start (the effective start of a submission) too.
        let start = c.effective_start(from);
        prop_assert_eq!(c.working_time_between(start, c.add_working_time(start, amount)), amount);
        // The result is the earliest such instant: a nanosecond less is not enough.
        if amount > Duration::zero() {
            let before = to - Duration::nanoseconds(1);
            prop_assert!(c.working_time_between(from, before) < amount);
        }
    }

    #[test]
    fn deadlines_are_after_submission(
        which in 0usize..7,
        submitted in instant(),
        days in 0u32..6,
    ) {
        let c = &property_calendars()[which];
        let start = c.effective_start(submitted);
        let deadline = c.deadline(submitted, days);
        prop_assert!(start >= submitted);
        prop_assert!(deadline >= submitted);
        prop_assert!(deadline >= start);
        prop_assert_eq!(
            c.working_time_between(start, deadline),
            Duration::hours(24 * i64::from(days))
        );
        // Before the effective start no working time runs.
        prop_assert_eq!(c.working_time_between(submitted, start) > Duration::zero(),
            start > submitted && c.is_working_day(c.day_of(submitted)));
    }

    #[test]
    fn working_time_is_additive(
        which in 0usize..7,
        a in instant(),
        b_offset in 0i64..(30 * 86_400),
        c_offset in 0i64..(30 * 86_400),
    ) {
        let cal = &property_calendars()[which];
        let b = a + Duration::seconds(b_offset);
        let c = b + Duration::seconds(c_offset);
        prop_assert_eq!(
            cal.working_time_between(a, c),
            cal.working_time_between(a, b) + cal.working_time_between(b, c)
        );
        prop_assert!(cal.working_time_between(a, c) <= c - a);
    }
}
