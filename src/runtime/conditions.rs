//! Condition types, reasons and the helpers that keep `lastTransitionTime` honest.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// The AWS side works as specified.
pub const READY: &str = "Ready";
/// The last reconcile reached AWS and every needed write succeeded.
pub const SYNCED: &str = "Synced";
/// AWS is converging.
pub const PROGRESSING: &str = "Progressing";
/// A human is needed.
pub const DEGRADED: &str = "Degraded";
/// Deletion waits for something.
pub const DELETION_BLOCKED: &str = "DeletionBlocked";

/// Reason: the spec failed validation.
pub const REASON_INVALID_SPEC: &str = "InvalidSpec";
/// Reason: everything checked out.
pub const REASON_AS_EXPECTED: &str = "AsExpected";
/// Reason: `spec.policy.paused` is set.
pub const REASON_PAUSED: &str = "Paused";
/// Reason: the object's turn in a slow AWS action quota is later than a pass waits.
pub const REASON_WAITING_FOR_QUOTA: &str = "WaitingForQuota";
/// Reason: an existing AWS resource with our name is not ours.
pub const REASON_NAME_CONFLICT: &str = "NameConflict";

/// `"True"` or `"False"`.
pub fn status_str(value: bool) -> &'static str {
    if value { "True" } else { "False" }
}

/// Set condition `type_` in `conditions`. `lastTransitionTime` changes only when the status flips.
/// Returns true when the list changed at all.
pub fn set_condition(
    conditions: &mut Vec<Condition>,
    type_: &str,
    status: bool,
    reason: &str,
    message: &str,
    generation: Option<i64>,
) -> bool {
    // Never an empty message: besides being unhelpful, the v1.20 apiserver's server-side apply on
    // the status subresource turns "" into null and rejects the patch.
    let message = if message.is_empty() { reason } else { message };
    let status = status_str(status);
    if let Some(c) = conditions.iter_mut().find(|c| c.type_ == type_) {
        if c.status == status && c.reason == reason && c.message == message && c.observed_generation == generation {
            return false;
        }
        if c.status != status {
            c.last_transition_time = Time(crate::runtime::clock::now());
        }
        c.status = status.into();
        c.reason = reason.into();
        c.message = message.into();
        c.observed_generation = generation;
        return true;
    }
    conditions.push(Condition {
        type_: type_.into(),
        status: status.into(),
        reason: reason.into(),
        message: message.into(),
        observed_generation: generation,
        last_transition_time: Time(crate::runtime::clock::now()),
    });
    true
}

/// The condition of `type_`, if present.
pub fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// True when condition `type_` is present with status `True`.
pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    find(conditions, type_).is_some_and(|c| c.status == "True")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transition_time_moves_only_on_status_flip() {
        let mut cs = Vec::new();
        assert!(set_condition(&mut cs, READY, false, "Pending", "waiting", Some(1)));
        let t0 = cs[0].last_transition_time.clone();
        assert!(!set_condition(&mut cs, READY, false, "Pending", "waiting", Some(1)), "no-op must report no change");
        assert!(set_condition(&mut cs, READY, false, "Pending", "still waiting", Some(2)));
        assert_eq!(cs[0].last_transition_time, t0);
        std::thread::sleep(std::time::Duration::from_millis(2));
        assert!(set_condition(&mut cs, READY, true, REASON_AS_EXPECTED, "", Some(2)));
        assert_ne!(cs[0].last_transition_time, t0);
        assert!(is_true(&cs, READY));
        assert_eq!(cs.len(), 1);
    }
}
