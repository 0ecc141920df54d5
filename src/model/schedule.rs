//! The repair's schedule and the alarms' targets, checked as the base
//! template's parameter patterns check them, before any AWS call. Each
//! check says what is wrong with the value; the settings table puts the
//! setting's flag in front.

/// `off`, `rate(N unit)` or `cron(...)`: the EventBridge Scheduler
/// expressions the repair accepts.
/// <https://docs.aws.amazon.com/scheduler/latest/UserGuide/schedule-types.html>
pub fn check(expression: &str) -> Result<(), String> {
    if expression == "off" {
        return Ok(());
    }
    if let Some(rate) = expression
        .strip_prefix("rate(")
        .and_then(|r| r.strip_suffix(')'))
    {
        let mut words = rate.split(' ');
        if let (Some(count), Some(unit), None) = (words.next(), words.next(), words.next()) {
            let singular = ["minute", "hour", "day"].contains(&unit);
            let plural = ["minutes", "hours", "days"].contains(&unit);
            let valid_count = !count.starts_with('0') && count.parse::<u32>().is_ok_and(|n| n > 0);
            // Scheduler wants "1 day" but "2 days".
            if valid_count && ((count == "1" && singular) || (count != "1" && plural)) {
                return Ok(());
            }
        }
    } else if let Some(cron) = expression
        .strip_prefix("cron(")
        .and_then(|c| c.strip_suffix(')'))
        && cron.split_whitespace().count() == 6
        && !cron.contains(['(', ')'])
    {
        return Ok(());
    }
    Err(format!(
        "{expression:?} is not a schedule: use 'rate(1 day)', 'rate(6 hours)', 'rate(30 minutes)', 'cron(0 3 * * ? *)' (six fields, as EventBridge Scheduler reads them), or 'off'"
    ))
}

/// An SNS topic ARN and an email address, each optional ("").
#[cfg(test)]
pub fn check_alarm_targets(topic: &str, email: &str) -> Result<(), String> {
    check_alarm_topic(topic)?;
    check_alarm_email(email)
}

/// An SNS topic ARN, or "" for none.
pub fn check_alarm_topic(topic: &str) -> Result<(), String> {
    if !topic.is_empty() {
        let parts: Vec<&str> = topic.split(':').collect();
        let valid = parts.len() == 6
            && parts[0] == "arn"
            && parts[2] == "sns"
            && parts[4].len() == 12
            && parts[4].bytes().all(|b| b.is_ascii_digit())
            && !parts[5].is_empty();
        if !valid {
            return Err(format!(
                "{topic:?} is not an SNS topic ARN: give one such as arn:aws:sns:us-east-1:123456789012:pager, or '' for none"
            ));
        }
    }
    Ok(())
}

/// An email address, or "" for none.
pub fn check_alarm_email(email: &str) -> Result<(), String> {
    if !email.is_empty() {
        let valid = email.split_once('@').is_some_and(|(user, domain)| {
            !user.is_empty() && domain.contains('.') && !domain.contains('@')
        }) && !email.contains(char::is_whitespace);
        if !valid {
            return Err(format!(
                "{email:?} is not an email address: give one such as oncall@example.com, or '' for none"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_as_scheduler_reads_them() {
        for good in [
            "off",
            "rate(1 day)",
            "rate(6 hours)",
            "rate(30 minutes)",
            "cron(0 3 * * ? *)",
        ] {
            assert!(check(good).is_ok(), "{good}");
        }
        for bad in [
            "daily",
            "rate(1 days)",
            "rate(2 day)",
            "rate(0 hours)",
            "rate(6 weeks)",
            "cron(0 3 * *)",
            "",
        ] {
            let error = check(bad).unwrap_err().to_string();
            assert!(error.contains("rate(6 hours)"), "{bad}: {error}");
        }
    }

    #[test]
    fn alarm_targets_are_a_topic_and_an_address() {
        assert!(check_alarm_targets("", "").is_ok());
        assert!(check_alarm_targets("arn:aws:sns:us-east-1:123456789012:pager", "a@b.io").is_ok());
        assert!(check_alarm_targets("arn:aws:sqs:us-east-1:123456789012:q", "").is_err());
        assert!(check_alarm_targets("", "not an address").is_err());
    }
}
